"""SQL of the study store: the lookups its admin and rater calls share, each run on a connection the caller
opened (and so inside the caller's transaction)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Insert, Row, Select, bindparam, exists, func, select
from sqlalchemy.orm import aliased

from sreval.db.tables import Rater, Rating, ScheduleItem, Stimulus, Study, StudyMethod
from sreval.errors import ParameterError
from sreval.study.checks import check_public_id
from sreval.study.records import RaterView, Refusal, RequestRefused, StudyInfo
from sreval.study.schedule import MIN_RETEST_GAP, build_schedule
from sreval.vocabulary import STIMULUS_KINDS, StimulusKind


def _submit_statement(*, lock: bool) -> Select[Any]:
    """Everything `submit` checks, for the rater of `:key` answering (`:public_id`, `:repetition`), in one
    statement: the rater and their study, the slot answered (its position and stimulus, NULL when it is not in
    the rater's schedule), the score already stored for it, the due position, and the rater's progress."""
    slot = (
        select(ScheduleItem.position, ScheduleItem.stimulus_id)
        .join(Stimulus, Stimulus.id == ScheduleItem.stimulus_id)
        .where(
            ScheduleItem.rater_id == Rater.id,
            Stimulus.public_id == bindparam("public_id"),
            ScheduleItem.repetition == bindparam("repetition"),
        )
    )
    stored = (
        select(Rating.score)
        .join(Stimulus, Stimulus.id == Rating.stimulus_id)
        .where(
            Rating.rater_id == Rater.id,
            Stimulus.public_id == bindparam("public_id"),
            Rating.repetition == bindparam("repetition"),
        )
    )
    pending = aliased(ScheduleItem)
    due = select(func.min(pending.position)).where(
        pending.rater_id == Rater.id,
        ~exists().where(
            Rating.rater_id == pending.rater_id,
            Rating.stimulus_id == pending.stimulus_id,
            Rating.repetition == pending.repetition,
        ),
    )
    query = (
        select(
            Rater.id,
            Rater.simulated,
            Rater.consent_at,
            Rater.started_at,
            Rater.finished_at,
            Study.closed_at,
            slot.with_only_columns(ScheduleItem.position).scalar_subquery().label("slot_position"),
            slot.with_only_columns(ScheduleItem.stimulus_id).scalar_subquery().label("slot_stimulus"),
            stored.scalar_subquery().label("stored"),
            due.scalar_subquery().label("due"),
            select(func.count()).where(Rating.rater_id == Rater.id).scalar_subquery().label("done"),
            select(func.count()).where(ScheduleItem.rater_id == Rater.id).scalar_subquery().label("total"),
        )
        .join(Study, Study.id == Rater.study_id)
        .where(Rater.token_sha256 == bindparam("key"))
    )
    if lock:  # PostgreSQL (SQLite's BEGIN IMMEDIATE already serialises writers)
        return query.with_for_update(of=Rater).suffix_with(f"FOR SHARE OF {Study.__tablename__}")
    return query


_SUBMIT_STATE = _submit_statement(lock=False)
_SUBMIT_STATE_LOCKED = _submit_statement(lock=True)


def submit_state(conn: Connection, key: str, public_id: str, repetition: int, *, lock: bool) -> Any:
    """The row of `_submit_statement` (None for an unknown token); `lock` takes the locks on PostgreSQL."""
    statement = _SUBMIT_STATE_LOCKED if lock and conn.dialect.name == "postgresql" else _SUBMIT_STATE
    return conn.execute(statement, {"key": key, "public_id": public_id, "repetition": repetition}).first()


def scheduled_stimulus(conn: Connection, rater_id: int, stimulus: object) -> tuple[int, str]:
    """Id and file (relative to the study folder) of `stimulus` if it is in the rater's schedule, else
    `RequestRefused` (UNKNOWN_STIMULUS)."""
    row = conn.execute(
        select(Stimulus.id, Stimulus.path)
        .join(ScheduleItem, ScheduleItem.stimulus_id == Stimulus.id)
        .where(ScheduleItem.rater_id == rater_id, Stimulus.public_id == check_public_id(stimulus))
        .limit(1)
    ).first()
    if row is None:
        raise RequestRefused(Refusal.UNKNOWN_STIMULUS, "this image is not part of your study")
    return int(row.id), str(row.path)


def insert_row(conn: Connection, statement: Insert) -> int:
    """Run a single-row INSERT and return the new row's id."""
    key = conn.execute(statement).inserted_primary_key
    assert key is not None
    return int(key[0])


def rater_row(conn: Connection, key: str, *, lock: bool = False) -> Any:
    query = (
        select(
            Rater.id,
            Rater.public_id,
            Rater.simulated,
            Rater.consent_at,
            Rater.started_at,
            Rater.finished_at,
            Study.name.label("study"),
            Study.closed_at,
            Study.folder,
        )
        .join(Study, Study.id == Rater.study_id)
        .where(Rater.token_sha256 == key)
    )
    if lock:  # PostgreSQL: one rater's submits run one after the other (SQLite: BEGIN IMMEDIATE does it)
        query = query.with_for_update(of=Rater)
    return conn.execute(query).first()


def rater_view(conn: Connection, rater: Row[Any]) -> RaterView:
    done, total = progress(conn, rater.id)
    return RaterView(
        study=rater.study,
        rater=rater.public_id,
        closed=rater.closed_at is not None,
        consent_given=rater.consent_at is not None,
        done=done,
        total=total,
        finished=total > 0 and done == total,
    )


def progress(conn: Connection, rater_id: int) -> tuple[int, int]:
    done = conn.execute(select(func.count()).where(Rating.rater_id == rater_id)).scalar_one()
    total = conn.execute(select(func.count()).where(ScheduleItem.rater_id == rater_id)).scalar_one()
    return int(done), int(total)


def due_item(conn: Connection, rater_id: int) -> Any:
    """The first position of a rater's schedule without a rating."""
    return conn.execute(
        select(
            ScheduleItem.position,
            ScheduleItem.repetition,
            ScheduleItem.phase,
            Stimulus.public_id,
            Stimulus.path,
            Stimulus.expected,
        )
        .join(Stimulus, Stimulus.id == ScheduleItem.stimulus_id)
        .outerjoin(
            Rating,
            (Rating.rater_id == ScheduleItem.rater_id)
            & (Rating.stimulus_id == ScheduleItem.stimulus_id)
            & (Rating.repetition == ScheduleItem.repetition),
        )
        .where(ScheduleItem.rater_id == rater_id, Rating.id.is_(None))
        .order_by(ScheduleItem.position)
        .limit(1)
    ).first()


def stimulus_keys(conn: Connection, study_id: int) -> dict[str, list[int]]:
    """Stimulus ids by role, in id order (the order `build_schedule` needs to be reproducible)."""
    keys: dict[str, list[int]] = {"calibration": [], "test": [], "gold": []}
    for stimulus_id, kind in conn.execute(
        select(Stimulus.id, Stimulus.kind).where(Stimulus.study_id == study_id).order_by(Stimulus.id)
    ):
        keys[StimulusKind(kind).group].append(stimulus_id)
    return keys


def schedule_for(study_settings: dict[str, Any], keys: dict[str, list[int]], seed: int) -> list[Any]:
    return build_schedule(
        keys["calibration"],
        keys["test"],
        keys["gold"],
        seed=seed,
        retest=float(study_settings.get("retest", 0.0)),
        min_gap=int(study_settings.get("min_retest_gap", MIN_RETEST_GAP)),
    )


def study_row(conn: Connection, url: str, name: str, *, lock: bool = False, parameter: str = "study") -> Row[Any]:
    """The row of study `name`, or `ParameterError` (about the caller's `parameter`) listing the known studies of
    the database at `url`."""
    query = select(
        Study.id, Study.name, Study.created_at, Study.closed_at, Study.seed, Study.folder, Study.settings
    ).where(Study.name == name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        known = conn.execute(select(Study.name).order_by(Study.id)).scalars().all()
        where = f"known: {', '.join(known)}" if known else "it holds none; create one with `sreval study create`"
        raise ParameterError(parameter, f"no study named {name!r} in {url} ({where})")
    return row


def study_info(conn: Connection, study: Row[Any]) -> StudyInfo:
    """A study's definition and size (`study` is its `study_row`)."""
    methods = (
        conn.execute(select(StudyMethod.name).where(StudyMethod.study_id == study.id).order_by(StudyMethod.position))
        .scalars()
        .all()
    )
    kinds = dict(
        conn.execute(
            select(Stimulus.kind, func.count()).where(Stimulus.study_id == study.id).group_by(Stimulus.kind)
        ).all()
    )
    raters = conn.execute(select(func.count()).where(Rater.study_id == study.id)).scalar_one()
    return StudyInfo(
        name=study.name,
        created_at=study.created_at,
        closed_at=study.closed_at,
        folder=Path(study.folder),
        seed=int(study.seed),
        settings=study.settings,
        methods=list(methods),
        stimuli={k: int(kinds.get(k, 0)) for k in STIMULUS_KINDS},
        raters=int(raters),
    )

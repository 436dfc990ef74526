"""The MOS study store: the one interface the CLI, the simulation and the rater app use to read and write studies.

Open it with `open_study_store(url)` (same URLs, settings and schema as the results store; SQLite files are
switched to WAL mode with a busy timeout so that many raters can submit at once). Rater-facing calls take the
rater's token from their link and never return anything that names a method or a source image:

    view = store.rater_for_token(token)          # landing page: None = invalid link
    store.give_consent(token)                    # consent page
    item = store.next_item(token)                # rating page: None = finished; item.image_path is the file
    store.submit(token, item.stimulus, item.repetition, score, response_ms)

Admin calls take the study name: `invite`, `status`, `export`, `close_study`, `list_studies`, `study`, `stimuli`,
`schedule`. The app also reports the stimuli it cannot show (`report_problem`). Studies are created with
`sreval.study.builder.build_study`, which renders the stimulus files and then calls `create_study`.

Integrity rules, enforced here and by the database itself (CHECK, UNIQUE and foreign-key constraints):

* every `submit` is its own short transaction; a refused one (`RequestRefused`, with a `reason`) changes nothing;
* a rating is for exactly the rater's next due item (resuming a link continues there), with an integer score
  1..5; (rater, stimulus, repetition) is unique, so a replayed submit of the same score answers
  `already_recorded` and changes nothing, and a different score for a rated item is refused;
* a finished rater, a closed study, an unknown token or a stimulus outside the rater's schedule get nothing;
* image files are only returned for stimuli of the asking rater's schedule, and only inside the study folder.

Calibration answers are stored as ratings of the calibration stimuli (kind `calibration_hr` / `calibration_nn`,
the intended score in the stimulus's `expected`), not in a table of their own: one uniqueness rule, one resume
rule and one transaction path for every answer; `export` and `status` tell them apart by `kind`.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, NamedTuple, Self

import pandas as pd
from sqlalchemy import Connection, Engine, Insert, Row, Select, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import aliased

from sreval import settings
from sreval.db import migrations
from sreval.db.tables import (
    STIMULUS_KINDS,
    Problem,
    Rater,
    Rating,
    ScheduleItem,
    Stimulus,
    Study,
    StudyImage,
    StudyMethod,
)
from sreval.errors import SrevalError
from sreval.results.store import _reason, create_store_engine, mask_url
from sreval.study.schedule import MIN_RETEST_GAP, Phase, build_schedule, rater_seed
from sreval.study.security import MAX_TOKEN_LENGTH, new_token, token_sha256

log = logging.getLogger(__name__)

#: Seconds an SQLite writer waits for another one before failing (submits take milliseconds).
#: The answer scale of the SRGAN protocol (ITU-R BT.500 absolute category rating): score → label.
SCORE_LABELS: dict[int, str] = {1: "bad", 2: "poor", 3: "fair", 4: "good", 5: "excellent"}
#: When a gold item counts as failed (an inattentive or confused answer).
GOLD_RULE = "a gold HR item rated 2 or lower, or a gold NN item rated 4 or higher, is a failed gold item"
#: Columns of `export`, in order.
EXPORT_COLUMNS = (
    "rater", "stimulus", "method", "dataset", "image", "repetition", "score", "response_ms", "created_at", "kind",
    "simulated",
)  # fmt: skip
#: Largest response time stored (the column is a 32-bit integer: about 24 days).
MAX_RESPONSE_MS = 2**31 - 1
#: Study names double as folder names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MAX_PUBLIC_ID = 64
_INVALID_LINK = "this link is not valid; use the link you were sent"
_CLOSED = "this study is closed; thank you for your interest"
_NO_CONSENT = "please give your consent before rating"
_MAX_INVITES = 10_000
_MAX_PROBLEM = 500


class Refusal(StrEnum):
    """Why a rater request was refused (`RequestRefused.reason`); the app can branch on it."""

    INVALID_TOKEN = "invalid_token"
    STUDY_CLOSED = "study_closed"
    NO_CONSENT = "no_consent"
    FINISHED = "finished"
    BAD_SCORE = "bad_score"
    BAD_REPETITION = "bad_repetition"
    BAD_RESPONSE_TIME = "bad_response_time"
    UNKNOWN_STIMULUS = "unknown_stimulus"
    NOT_DUE = "not_due"
    CONFLICT = "conflict"


class RequestRefused(SrevalError):
    """A rater request the store refused; nothing was changed. The message may be shown to the rater."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RaterView:
    """What a rater's link stands for: enough for the app to pick the page to show."""

    study: str
    rater: str  # public rater id, e.g. r07
    closed: bool  # the study takes no more ratings
    consent_given: bool
    done: int  # items rated, calibration included
    total: int  # items in the schedule
    finished: bool


@dataclass(frozen=True)
class Item:
    """The item a rater is due to rate. Nothing here names the method or the source image: show `image_path`
    without caption, alt text or file name; send back `stimulus` and `repetition` with the score."""

    stimulus: str  # public stimulus id (random)
    repetition: int  # 1, or 2 for the second showing of a retest item
    phase: Phase  # "calibration" first, then "test"
    position: int  # 0-based position in the rater's schedule (= items already rated)
    total: int  # schedule length
    phase_position: int  # 0-based position within the phase
    phase_total: int  # items in the phase
    image_path: Path  # the PNG to show (inside the study folder)
    anchor: int | None  # calibration: the score this image stands for (5 = HR, 1 = NN); None in the test phase


@dataclass(frozen=True)
class SubmitResult:
    """A stored (or already stored, identical) rating and the rater's progress after it."""

    status: Literal["recorded", "already_recorded"]
    done: int
    total: int
    finished: bool


class Invitation(NamedTuple):
    """A new rater: public id and the token for their link (shown once; the database keeps only its hash)."""

    rater: str
    token: str


@dataclass(frozen=True)
class DraftMethod:
    name: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class DraftImage:
    dataset: str  # dataset key, or "calibration"
    name: str
    sha256: str


@dataclass(frozen=True)
class DraftStimulus:
    public_id: str
    kind: str  # one of STIMULUS_KINDS
    method: str | None  # a DraftMethod name for test items, None otherwise
    dataset: str
    image: str
    path: str  # PNG file relative to the study folder
    expected: int | None  # 5 for *_hr, 1 for *_nn, None for test items


@dataclass
class StudyDraft:
    """A study whose files are rendered (see `builder.build_study`), ready for `StudyStore.create_study`."""

    name: str
    folder: Path
    seed: int
    settings: dict[str, Any]
    methods: list[DraftMethod] = field(default_factory=list)
    images: list[DraftImage] = field(default_factory=list)
    stimuli: list[DraftStimulus] = field(default_factory=list)


@dataclass(frozen=True)
class StudyInfo:
    """A study's definition and size."""

    name: str
    created_at: datetime
    closed_at: datetime | None
    folder: Path
    seed: int
    settings: dict[str, Any]
    methods: list[str]
    stimuli: dict[str, int]  # count per kind
    raters: int


@dataclass(frozen=True)
class StudyStatus:
    """Progress of a study (see `StudyStore.status`)."""

    info: StudyInfo
    #: One row per rater: rater, simulated, created_at, consent_at, started_at, finished_at, done, total,
    #: gold_failures, calibration_misses (calibration answers other than the intended score).
    raters: pd.DataFrame
    #: One row per method (test items only): method, done, total, mean_score (over the ratings so far).
    methods: pd.DataFrame
    #: One row per failed gold rating: rater, stimulus, kind, dataset, image, repetition, score, expected.
    gold_failures: pd.DataFrame
    #: One row per stimulus the app could not show (`StudyStore.report_problem`): stimulus, kind, method,
    #: dataset, image, problem (the latest report), reports, raters, first_at, last_at.
    problems: pd.DataFrame
    gold_rule: str = GOLD_RULE


def _now() -> datetime:
    return datetime.now(UTC)


def _refuse(reason: Refusal, message: str) -> RequestRefused:
    return RequestRefused(reason, message)


def _as_int(value: object) -> int | None:
    """`value` as an int when it is an integer (Python or NumPy, not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def check_score(score: object) -> int:
    """`score` as an int if it is an integer 1..5, else `RequestRefused` (BAD_SCORE)."""
    value = _as_int(score)
    if value is None or not 1 <= value <= 5:
        raise _refuse(Refusal.BAD_SCORE, f"a score must be a whole number from 1 to 5, got {score!r}")
    return value


def _check_repetition(repetition: object) -> int:
    value = _as_int(repetition)
    if value not in (1, 2):
        raise _refuse(Refusal.BAD_REPETITION, f"repetition must be 1 or 2, got {repetition!r}")
    assert value is not None
    return value


def _check_response_ms(response_ms: object) -> int | None:
    if response_ms is None:
        return None
    ok = isinstance(response_ms, numbers.Real) and not isinstance(response_ms, bool)
    value = float(response_ms) if ok else math.nan  # type: ignore[arg-type]
    if not (math.isfinite(value) and 0 <= value <= MAX_RESPONSE_MS):
        message = f"response time must be milliseconds from 0 to {MAX_RESPONSE_MS}, got {response_ms!r}"
        raise _refuse(Refusal.BAD_RESPONSE_TIME, message)
    return round(value)


def _token_key(token: object) -> str | None:
    """The stored hash of a well-formed token, None for anything that cannot be one of ours."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        return None
    return token_sha256(token)


def check_study_name(name: str) -> str:
    """`name` if it can name a study (and its folder): letters, digits, '.', '_', '-', at most 100 characters."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SrevalError(
            f"study name {name!r} is not allowed: use 1 to 100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def _inside(folder: Path, relative: str) -> Path:
    """The stimulus file `relative` of a study folder, refusing anything that would leave the folder."""
    # realpath, not Path.resolve: a symlink loop in the folder must make the file unreadable (reported when it is
    # shown), not raise here.
    base = Path(os.path.realpath(folder))
    path = Path(os.path.realpath(base / relative))
    if not path.is_relative_to(base) or path == base:
        raise SrevalError(f"stimulus path {relative!r} leaves the study folder {base}; the database was altered")
    return path


class StudyStore:
    """An open study database. Create it with `open_study_store`; `close` it (or use `with`) when done.

    Thread-safe: the simulation and the app call it from many threads at once.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        # Transactions that write: on SQLite they begin with BEGIN IMMEDIATE (see `create_store_engine`).
        self._write_options = engine.execution_options(sreval_write=True)
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in growing steps (up to
        # 100 ms) before it tries again. The threads of this process (the sessions of one app server) queue on a
        # lock of their own instead, and take the database's lock as soon as it is free.
        self._write_queue = threading.Lock() if engine.dialect.name == "sqlite" else None
        self.url = url
        """The database URL with the password masked: safe to log or show."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction (on SQLite: BEGIN IMMEDIATE, after the other writers of this process)."""
        with self._write_queue or nullcontext(), self._write_options.begin() as conn:
            yield conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise SrevalError(f"could not {action} in study database {self.url}: {_reason(exc)}") from exc

    # --- admin: studies ----------------------------------------------------------------------------------------

    def study_exists(self, name: str) -> bool:
        with self._errors("look up a study"), self._engine.connect() as conn:
            return conn.execute(select(Study.id).where(Study.name == name)).first() is not None

    def create_study(self, draft: StudyDraft) -> StudyInfo:
        """Store a study whose stimulus files already exist under `draft.folder`, in one transaction."""
        check_study_name(draft.name)
        _check_draft(draft)
        folder = draft.folder.resolve()
        with self._errors(f"create study {draft.name!r} (nothing was stored)"), self._writing() as conn:
            if conn.execute(select(Study.id).where(Study.name == draft.name)).first() is not None:
                raise SrevalError(f"a study named {draft.name!r} already exists in {self.url}")
            study_id = _insert(
                conn,
                insert(Study).values(
                    name=draft.name,
                    created_at=_now(),
                    closed_at=None,
                    seed=draft.seed,
                    folder=str(folder),
                    settings=draft.settings,
                ),
            )
            method_ids = {
                m.name: _insert(
                    conn, insert(StudyMethod).values(study_id=study_id, name=m.name, position=i, meta=m.metadata)
                )
                for i, m in enumerate(draft.methods)
            }
            image_ids = {
                (im.dataset, im.name): _insert(
                    conn,
                    insert(StudyImage).values(study_id=study_id, dataset=im.dataset, name=im.name, sha256=im.sha256),
                )
                for im in draft.images
            }
            conn.execute(
                insert(Stimulus),
                [
                    {
                        "study_id": study_id,
                        "public_id": s.public_id,
                        "method_id": method_ids[s.method] if s.method is not None else None,
                        "image_id": image_ids[s.dataset, s.image],
                        "kind": s.kind,
                        "path": s.path,
                        "expected": s.expected,
                    }
                    for s in draft.stimuli
                ],
            )
        log.info("created study %s (%d stimuli) in %s", draft.name, len(draft.stimuli), self.url)
        return self.study(draft.name)

    def list_studies(self) -> pd.DataFrame:
        """One row per study, oldest first: name, created_at, closed_at, raters, finished, ratings."""
        raters = (
            select(
                Rater.study_id,
                func.count().label("raters"),
                func.count(Rater.finished_at).label("finished"),
            )
            .group_by(Rater.study_id)
            .subquery()
        )
        ratings = (
            select(Rater.study_id, func.count().label("ratings"))
            .join(Rating, Rating.rater_id == Rater.id)
            .group_by(Rater.study_id)
            .subquery()
        )
        query = (
            select(
                Study.name,
                Study.created_at,
                Study.closed_at,
                func.coalesce(raters.c.raters, 0).label("raters"),
                func.coalesce(raters.c.finished, 0).label("finished"),
                func.coalesce(ratings.c.ratings, 0).label("ratings"),
            )
            .outerjoin(raters, raters.c.study_id == Study.id)
            .outerjoin(ratings, ratings.c.study_id == Study.id)
            .order_by(Study.id)
        )
        with self._errors("list studies"), self._engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=["name", "created_at", "closed_at", "raters", "finished", "ratings"])
        return frame.astype({"raters": "int64", "finished": "int64", "ratings": "int64"})

    def study(self, name: str) -> StudyInfo:
        """A study's definition and size."""
        with self._errors(f"read study {name!r}"), self._engine.connect() as conn:
            return self._info(conn, self._study(conn, name))

    def close_study(self, name: str) -> datetime:
        """Stop a study taking ratings (idempotent); return when it was closed."""
        with self._errors(f"close study {name!r}"), self._writing() as conn:
            # Locking the row waits for the submits under way (each shares it until it commits): `closed_at`
            # is taken after them, and every submit after this one sees the study closed.
            study = self._study(conn, name, lock=True)
            if study.closed_at is not None:
                already: datetime = study.closed_at
                return already
            closed_at = _now()
            conn.execute(update(Study).where(Study.id == study.id).values(closed_at=closed_at))
        log.info("closed study %s", name)
        return closed_at

    def invite(self, study: str, n: int, *, simulated: bool = False) -> list[Invitation]:
        """Add `n` raters, each with a token and their own stored order (from the study seed and their number).

        The tokens are returned once and never stored; print the links right away (`security.invite_link`).
        """
        if _as_int(n) is None or not 1 <= n <= _MAX_INVITES:
            raise SrevalError(f"the number of raters to invite must be 1 to {_MAX_INVITES}, got {n!r}")
        invitations: list[Invitation] = []
        with self._errors(f"invite raters to study {study!r} (nobody was invited)"), self._writing() as conn:
            row = self._study(conn, study)
            if row.closed_at is not None:
                raise SrevalError(f"study {study!r} is closed; it takes no new raters")
            kinds = _stimulus_keys(conn, row.id)
            start = conn.execute(select(func.coalesce(func.max(Rater.number), 0)).where(Rater.study_id == row.id))
            first = int(start.scalar_one()) + 1
            now = _now()
            for number in range(first, first + n):
                token = new_token()
                seed = rater_seed(row.seed, number)
                public_id = f"{'s' if simulated else 'r'}{number:02d}"
                rater_id = _insert(
                    conn,
                    insert(Rater).values(
                        study_id=row.id,
                        number=number,
                        public_id=public_id,
                        token_sha256=token_sha256(token),
                        seed=seed,
                        simulated=simulated,
                        created_at=now,
                    ),
                )
                slots = _schedule_for(row.settings, kinds, seed)
                conn.execute(
                    insert(ScheduleItem),
                    [
                        {
                            "rater_id": rater_id,
                            "position": i,
                            "stimulus_id": s.stimulus,
                            "repetition": s.repetition,
                            "phase": s.phase,
                        }
                        for i, s in enumerate(slots)
                    ],
                )
                invitations.append(Invitation(public_id, token))
        log.info("invited %d %sraters to study %s", n, "simulated " if simulated else "", study)
        return invitations

    def stimuli(self, study: str) -> pd.DataFrame:
        """Admin view of the stimuli (never show it to raters): public_id, kind, method, dataset, image, expected,
        path (absolute)."""
        with self._errors(f"read the stimuli of study {study!r}"), self._engine.connect() as conn:
            row = self._study(conn, study)
            query = (
                _described_stimuli(Stimulus.expected, Stimulus.path)
                .where(Stimulus.study_id == row.id)
                .order_by(Stimulus.id)
            )
            rows = [
                (p, k, _method_label(k, m), d, i, e, str(_inside(Path(row.folder), f)))
                for p, k, m, d, i, e, f in conn.execute(query)
            ]
        frame = pd.DataFrame(rows, columns=["public_id", "kind", "method", "dataset", "image", "expected", "path"])
        return frame.astype({"expected": "Int64"})

    def schedule(self, study: str, rater: str) -> pd.DataFrame:
        """Admin view of one rater's stored order: position, stimulus (public id), repetition, phase."""
        with self._errors(f"read a schedule of study {study!r}"), self._engine.connect() as conn:
            row = self._study(conn, study)
            query = (
                select(ScheduleItem.position, Stimulus.public_id, ScheduleItem.repetition, ScheduleItem.phase)
                .join(Stimulus, Stimulus.id == ScheduleItem.stimulus_id)
                .join(Rater, Rater.id == ScheduleItem.rater_id)
                .where(Rater.study_id == row.id, Rater.public_id == rater)
                .order_by(ScheduleItem.position)
            )
            rows = [tuple(r) for r in conn.execute(query)]
        if not rows:
            raise SrevalError(f"study {study!r} has no rater {rater!r}")
        return pd.DataFrame(rows, columns=["position", "stimulus", "repetition", "phase"])

    def rater_seed(self, study: str, rater: str) -> int:
        """The stored seed of a rater's order (`schedule.build_schedule` rebuilds the order from it)."""
        with self._errors(f"read study {study!r}"), self._engine.connect() as conn:
            row = self._study(conn, study)
            seed = conn.execute(
                select(Rater.seed).where(Rater.study_id == row.id, Rater.public_id == rater)
            ).scalar_one_or_none()
        if seed is None:
            raise SrevalError(f"study {study!r} has no rater {rater!r}")
        return int(seed)

    def status(self, study: str, *, include_simulated: bool = False) -> StudyStatus:
        """Progress per rater and per method, every failed gold item (`GOLD_RULE`), and the stimuli the app
        could not show.

        Simulated raters and their ratings are left out of all three tables unless `include_simulated`.
        """
        with self._errors(f"read the status of study {study!r}"), self._engine.connect() as conn:
            row = self._study(conn, study)
            info = self._info(conn, row)
            items = _items_frame(conn, row.id)
            raters = _raters_frame(conn, row.id)
            problems = _problems_frame(conn, row.id)
        if not include_simulated:
            items = items[~items["simulated"]]
            raters = raters[~raters["simulated"]]
        rated = items[items["score"].notna()]

        gold = rated[rated["kind"].isin(["gold_hr", "gold_nn"])]
        hr_low = (gold["kind"] == "gold_hr") & (gold["score"] <= 2)
        nn_high = (gold["kind"] == "gold_nn") & (gold["score"] >= 4)
        failed = gold[hr_low | nn_high]
        calibration = rated[rated["kind"].str.startswith("calibration")]
        misses = calibration[calibration["score"] != calibration["expected"]]

        per_rater = raters.set_index("rater")
        per_rater["done"] = rated.groupby("rater").size()
        per_rater["total"] = items.groupby("rater").size()
        per_rater["gold_failures"] = failed.groupby("rater").size()
        per_rater["calibration_misses"] = misses.groupby("rater").size()
        counts = ["done", "total", "gold_failures", "calibration_misses"]
        per_rater[counts] = per_rater[counts].fillna(0).astype("int64")

        tests = items[items["kind"] == "test"]
        tests_rated = tests[tests["score"].notna()]
        per_method = pd.DataFrame(index=pd.Index(info.methods, name="method"))
        per_method["done"] = tests_rated.groupby("method").size()
        per_method["total"] = tests.groupby("method").size()
        per_method[["done", "total"]] = per_method[["done", "total"]].fillna(0).astype("int64")
        per_method["mean_score"] = tests_rated.groupby("method")["score"].mean().astype("float64")

        columns = ["rater", "stimulus", "kind", "dataset", "image", "repetition", "score", "expected"]
        return StudyStatus(
            info=info,
            raters=per_rater.reset_index(),
            methods=per_method.reset_index(),
            gold_failures=failed[columns].reset_index(drop=True),
            problems=problems,
        )

    def export(
        self,
        study: str,
        *,
        include_simulated: bool = False,
        include_gold: bool = True,
        include_calibration: bool = True,
    ) -> pd.DataFrame:
        """Every rating in long format (`EXPORT_COLUMNS`), by rater and presentation order.

        `kind` flags gold and calibration items (test, gold_hr, gold_nn, calibration_hr, calibration_nn); their
        `method` is `hr` or `nn`. Ratings of simulated raters are left out unless `include_simulated`, so that
        they never reach an analysis by accident; `simulated` says which rows are.
        """
        with self._errors(f"export study {study!r}"), self._engine.connect() as conn:
            row = self._study(conn, study)
            items = _items_frame(conn, row.id)
        rated = items[items["score"].notna()]
        if not include_simulated:
            rated = rated[~rated["simulated"]]
        if not include_gold:
            rated = rated[~rated["kind"].str.startswith("gold")]
        if not include_calibration:
            rated = rated[~rated["kind"].str.startswith("calibration")]
        frame = rated.loc[:, list(EXPORT_COLUMNS)].reset_index(drop=True)
        return frame.astype({"repetition": "int64", "score": "int64", "response_ms": "Int64", "simulated": "bool"})

    # --- raters ------------------------------------------------------------------------------------------------

    def rater_for_token(self, token: str) -> RaterView | None:
        """The rater of a link's token, or None when the token is not one of ours."""
        key = _token_key(token)
        if key is None:
            return None
        with self._errors("look up a rater"), self._engine.connect() as conn:
            rater = _rater(conn, key)
            if rater is None:
                return None
            return _view(conn, rater)

    def give_consent(self, token: str) -> RaterView:
        """Record that the rater agreed to take part (once; later calls keep the first time)."""
        key = _token_key(token)
        with self._errors("record consent"), self._writing() as conn:
            rater = self._open_rater(conn, key)
            if rater.consent_at is None:
                conn.execute(update(Rater).where(Rater.id == rater.id).values(consent_at=_now()))
            rater = self._open_rater(conn, key)
            return _view(conn, rater)

    def next_item(self, token: str) -> Item | None:
        """The rater's next due item (the first unrated position: returning with a link resumes there), or None
        when they have rated everything."""
        key = _token_key(token)
        with self._errors("read the next item"), self._engine.connect() as conn:
            rater = self._open_rater(conn, key, consent=True)
            due = _due(conn, rater.id)
            if due is None:
                return None
            phases = dict(
                conn.execute(
                    select(ScheduleItem.phase, func.count())
                    .where(ScheduleItem.rater_id == rater.id)
                    .group_by(ScheduleItem.phase)
                ).all()
            )
            before = conn.execute(
                select(func.count()).where(
                    ScheduleItem.rater_id == rater.id,
                    ScheduleItem.phase == due.phase,
                    ScheduleItem.position < due.position,
                )
            ).scalar_one()
            return Item(
                stimulus=due.public_id,
                repetition=due.repetition,
                phase=due.phase,
                position=due.position,
                total=sum(phases.values()),
                phase_position=before,
                phase_total=phases[due.phase],
                image_path=_inside(Path(rater.folder), due.path),
                anchor=due.expected if due.phase == "calibration" else None,
            )

    def image_path(self, token: str, stimulus: str) -> Path:
        """The image file of `stimulus`, only if it is in this rater's schedule (of an open study) and the file
        is inside the study folder; `RequestRefused` otherwise."""
        key = _token_key(token)
        with self._errors("look up an image"), self._engine.connect() as conn:
            rater = self._open_rater(conn, key)
            _, path = _scheduled_stimulus(conn, rater.id, stimulus)
        return _inside(Path(rater.folder), path)

    def report_problem(self, token: str, stimulus: str, problem: str) -> None:
        """Record that `stimulus` (of this rater's schedule) could not be shown to the rater: `problem` says why,
        for the admin (`status`). The app offers no answer for such an item, so nothing gets rated."""
        key = _token_key(token)
        with self._errors("record a problem"), self._writing() as conn:
            rater = self._open_rater(conn, key)
            stimulus_id, _ = _scheduled_stimulus(conn, rater.id, stimulus)
            text = " ".join(str(problem).split())[:_MAX_PROBLEM] or "unknown problem"
            conn.execute(
                insert(Problem).values(rater_id=rater.id, stimulus_id=stimulus_id, problem=text, created_at=_now())
            )
        log.warning("study %s, rater %s: stimulus %s cannot be shown: %s", rater.study, rater.public_id, stimulus, text)

    def submit(
        self, token: str, stimulus: str, repetition: int, score: int, response_ms: float | None = None
    ) -> SubmitResult:
        """Store one rating in its own transaction.

        `score` must be an int 1..5 and (`stimulus`, `repetition`) the rater's next due item. Replaying a stored
        rating with the same score returns `already_recorded` and changes nothing; anything else that is wrong
        raises `RequestRefused` (its `reason` says what) and changes nothing either.

        The transaction is one SELECT that reads everything checked (`_SUBMIT_STATE`) and one INSERT, plus an
        UPDATE of the rater on their first and last item: it is what every rater waits for, and on SQLite it
        holds the database's write lock. On PostgreSQL the SELECT locks the rater's row (one rater's submits run
        one after the other) and shares the study's row, so `close_study` waits for the submits under way and
        every later one sees the study closed. A connection the server dropped is retried once on a new one:
        a submit is idempotent (a replay is answered as already recorded).
        """
        score = check_score(score)
        repetition = _check_repetition(repetition)
        response = _check_response_ms(response_ms)
        key = _token_key(token)
        public_id = _public_id(stimulus)
        if key is None:
            raise _refuse(Refusal.INVALID_TOKEN, _INVALID_LINK)
        for attempt in (1, 2):
            try:
                return self._submit(key, public_id, repetition, score, response)
            except IntegrityError:
                # The same item was stored by a concurrent submit between our check and our insert (the unique
                # constraint caught it): answer as for a replay.
                with self._errors("record the rating"), self._engine.connect() as conn:
                    state = _submit_state(conn, key, public_id, repetition, lock=False)
                    if state is None or state.stored is None:
                        raise
                    return _replayed(state, score)
            except DBAPIError as exc:
                if exc.connection_invalidated and attempt == 1:
                    log.warning("the study database dropped a connection; submitting again on a new one")
                    continue
                raise SrevalError(f"could not record the rating in study database {self.url}: {_reason(exc)}") from exc
            except SQLAlchemyError as exc:
                raise SrevalError(f"could not record the rating in study database {self.url}: {_reason(exc)}") from exc
        raise AssertionError("unreachable")

    def _submit(self, key: str, public_id: str, repetition: int, score: int, response: int | None) -> SubmitResult:
        with self._writing() as conn:
            state = _submit_state(conn, key, public_id, repetition, lock=True)
            if state is None:
                raise _refuse(Refusal.INVALID_TOKEN, _INVALID_LINK)
            if state.closed_at is not None:
                raise _refuse(Refusal.STUDY_CLOSED, _CLOSED)
            if state.consent_at is None:
                raise _refuse(Refusal.NO_CONSENT, _NO_CONSENT)
            if state.slot_stimulus is None:
                raise _refuse(Refusal.UNKNOWN_STIMULUS, "this item is not part of your study")
            if state.stored is not None:
                return _replayed(state, score)
            if state.finished_at is not None:
                raise _refuse(Refusal.FINISHED, "you have rated every item; thank you")
            if state.due != state.slot_position:
                raise _refuse(Refusal.NOT_DUE, "this is not the item you are due to rate; reload the page")
            now = _now()
            conn.execute(
                _INSERT_RATING,
                {
                    "rater_id": state.id,
                    "stimulus_id": state.slot_stimulus,
                    "repetition": repetition,
                    "score": score,
                    "response_ms": response,
                    "created_at": now,
                    "simulated": state.simulated,
                },
            )
            done, total = int(state.done) + 1, int(state.total)
            changes: dict[str, datetime] = {}
            if state.started_at is None:
                changes["started_at"] = now
            if done == total:
                changes["finished_at"] = now
            if changes:
                conn.execute(update(Rater).where(Rater.id == state.id).values(**changes))
            return SubmitResult("recorded", done, total, done == total)

    # --- helpers -----------------------------------------------------------------------------------------------

    def _study(self, conn: Connection, name: str, *, lock: bool = False) -> Row[Any]:
        query = select(
            Study.id, Study.name, Study.created_at, Study.closed_at, Study.seed, Study.folder, Study.settings
        ).where(Study.name == name)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            known = conn.execute(select(Study.name).order_by(Study.id)).scalars().all()
            where = f"known: {', '.join(known)}" if known else "it holds none; create one with `sreval study create`"
            raise SrevalError(f"no study named {name!r} in {self.url} ({where})")
        return row

    def _info(self, conn: Connection, study: Row[Any]) -> StudyInfo:
        methods = (
            conn.execute(
                select(StudyMethod.name).where(StudyMethod.study_id == study.id).order_by(StudyMethod.position)
            )
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

    def _open_rater(self, conn: Connection, key: str | None, *, consent: bool = False, lock: bool = False) -> Any:
        """The rater of a token hash in an open study, or `RequestRefused`."""
        rater = _rater(conn, key, lock=lock) if key is not None else None
        if rater is None:
            raise _refuse(Refusal.INVALID_TOKEN, _INVALID_LINK)
        if rater.closed_at is not None:
            raise _refuse(Refusal.STUDY_CLOSED, _CLOSED)
        if consent and rater.consent_at is None:
            raise _refuse(Refusal.NO_CONSENT, _NO_CONSENT)
        return rater


# --- queries -----------------------------------------------------------------------------------------------


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
_INSERT_RATING = insert(Rating)


def _submit_state(conn: Connection, key: str, public_id: str, repetition: int, *, lock: bool) -> Any:
    """The row of `_submit_statement` (None for an unknown token); `lock` takes the locks on PostgreSQL."""
    statement = _SUBMIT_STATE_LOCKED if lock and conn.dialect.name == "postgresql" else _SUBMIT_STATE
    return conn.execute(statement, {"key": key, "public_id": public_id, "repetition": repetition}).first()


def _scheduled_stimulus(conn: Connection, rater_id: int, stimulus: object) -> tuple[int, str]:
    """Id and file (relative to the study folder) of `stimulus` if it is in the rater's schedule, else
    `RequestRefused` (UNKNOWN_STIMULUS)."""
    row = conn.execute(
        select(Stimulus.id, Stimulus.path)
        .join(ScheduleItem, ScheduleItem.stimulus_id == Stimulus.id)
        .where(ScheduleItem.rater_id == rater_id, Stimulus.public_id == _public_id(stimulus))
        .limit(1)
    ).first()
    if row is None:
        raise _refuse(Refusal.UNKNOWN_STIMULUS, "this image is not part of your study")
    return int(row.id), str(row.path)


def _replayed(state: Any, score: int) -> SubmitResult:
    """The answer to a submit of an item already rated: the same score is a replay, another one a conflict."""
    if state.stored != score:
        raise _refuse(Refusal.CONFLICT, "this item is already rated; a rating cannot be changed")
    done, total = int(state.done), int(state.total)
    return SubmitResult("already_recorded", done, total, done == total)


def _insert(conn: Connection, statement: Insert) -> int:
    """Run a single-row INSERT and return the new row's id."""
    key = conn.execute(statement).inserted_primary_key
    assert key is not None
    return int(key[0])


def _public_id(stimulus: object) -> str:
    if not isinstance(stimulus, str) or not 0 < len(stimulus) <= _MAX_PUBLIC_ID:
        raise _refuse(Refusal.UNKNOWN_STIMULUS, "this item is not part of your study")
    return stimulus


def _rater(conn: Connection, key: str, *, lock: bool = False) -> Any:
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


def _view(conn: Connection, rater: Row[Any]) -> RaterView:
    done, total = _progress(conn, rater.id)
    return RaterView(
        study=rater.study,
        rater=rater.public_id,
        closed=rater.closed_at is not None,
        consent_given=rater.consent_at is not None,
        done=done,
        total=total,
        finished=total > 0 and done == total,
    )


def _progress(conn: Connection, rater_id: int) -> tuple[int, int]:
    done = conn.execute(select(func.count()).where(Rating.rater_id == rater_id)).scalar_one()
    total = conn.execute(select(func.count()).where(ScheduleItem.rater_id == rater_id)).scalar_one()
    return int(done), int(total)


def _due(conn: Connection, rater_id: int) -> Any:
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


def _stimulus_keys(conn: Connection, study_id: int) -> dict[str, list[int]]:
    """Stimulus ids by role, in id order (the order `build_schedule` needs to be reproducible)."""
    keys: dict[str, list[int]] = {"calibration": [], "test": [], "gold": []}
    for stimulus_id, kind in conn.execute(
        select(Stimulus.id, Stimulus.kind).where(Stimulus.study_id == study_id).order_by(Stimulus.id)
    ):
        keys["test" if kind == "test" else kind.split("_")[0]].append(stimulus_id)
    return keys


def _schedule_for(study_settings: dict[str, Any], keys: dict[str, list[int]], seed: int) -> list[Any]:
    return build_schedule(
        keys["calibration"],
        keys["test"],
        keys["gold"],
        seed=seed,
        retest=float(study_settings.get("retest", 0.0)),
        min_gap=int(study_settings.get("min_retest_gap", MIN_RETEST_GAP)),
    )


def _method_label(kind: str, method: str | None) -> str:
    """The method column of exports: the method's name for test items, `hr` / `nn` for the others."""
    return method if kind == "test" and method is not None else kind.rsplit("_", 1)[-1]


def _items_frame(conn: Connection, study_id: int) -> pd.DataFrame:
    """Every schedule position of a study with its rating (if any): the table status and export are made from."""
    query = (
        select(
            Rater.public_id,
            Rater.number,
            Rater.simulated,
            ScheduleItem.position,
            ScheduleItem.phase,
            Stimulus.public_id,
            Stimulus.kind,
            StudyMethod.name,
            StudyImage.dataset,
            StudyImage.name,
            ScheduleItem.repetition,
            Stimulus.expected,
            Rating.score,
            Rating.response_ms,
            Rating.created_at,
        )
        .join(Rater, Rater.id == ScheduleItem.rater_id)
        .join(Stimulus, Stimulus.id == ScheduleItem.stimulus_id)
        .join(StudyImage, StudyImage.id == Stimulus.image_id)
        .outerjoin(StudyMethod, StudyMethod.id == Stimulus.method_id)
        .outerjoin(
            Rating,
            (Rating.rater_id == ScheduleItem.rater_id)
            & (Rating.stimulus_id == ScheduleItem.stimulus_id)
            & (Rating.repetition == ScheduleItem.repetition),
        )
        .where(Rater.study_id == study_id)
        .order_by(Rater.number, ScheduleItem.position)
    )
    columns = [
        "rater", "number", "simulated", "position", "phase", "stimulus", "kind", "method", "dataset", "image",
        "repetition", "expected", "score", "response_ms", "created_at",
    ]  # fmt: skip
    rows = [tuple(r) for r in conn.execute(query)]
    frame = pd.DataFrame(rows, columns=columns)
    frame["method"] = [_method_label(k, m) for k, m in zip(frame["kind"], frame["method"], strict=True)]
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame.astype(
        {"simulated": "bool", "expected": "Int64", "score": "Int64", "response_ms": "Int64", "repetition": "int64"}
    )


def _described_stimuli(*columns: Any) -> Select[Any]:
    """Stimuli with what describes them to the admin: public id, kind, method name (NULL for HR and NN items),
    dataset and image, followed by `columns`."""
    return (
        select(Stimulus.public_id, Stimulus.kind, StudyMethod.name, StudyImage.dataset, StudyImage.name, *columns)
        .join(StudyImage, StudyImage.id == Stimulus.image_id)
        .outerjoin(StudyMethod, StudyMethod.id == Stimulus.method_id)
    )


def _problems_frame(conn: Connection, study_id: int) -> pd.DataFrame:
    """The problems reported for a study, one row per stimulus (see `StudyStatus.problems`)."""
    query = (
        _described_stimuli(Problem.problem, Problem.rater_id, Problem.created_at)
        .join(Problem, Problem.stimulus_id == Stimulus.id)
        .where(Stimulus.study_id == study_id)
        .order_by(Problem.id)
    )
    reports = pd.DataFrame(
        [tuple(r) for r in conn.execute(query)],
        columns=["stimulus", "kind", "method", "dataset", "image", "problem", "rater", "created_at"],
    )
    reports["method"] = [_method_label(k, m) for k, m in zip(reports["kind"], reports["method"], strict=True)]
    reports["created_at"] = pd.to_datetime(reports["created_at"], utc=True)
    grouped = reports.groupby("stimulus", sort=False)
    frame = grouped[["kind", "method", "dataset", "image", "problem"]].last()
    frame["reports"] = grouped.size()
    frame["raters"] = grouped["rater"].nunique()
    frame["first_at"] = grouped["created_at"].min()
    frame["last_at"] = grouped["created_at"].max()
    return frame.reset_index().astype({"reports": "int64", "raters": "int64"})


def _raters_frame(conn: Connection, study_id: int) -> pd.DataFrame:
    query = (
        select(
            Rater.public_id, Rater.simulated, Rater.created_at, Rater.consent_at, Rater.started_at, Rater.finished_at
        )
        .where(Rater.study_id == study_id)
        .order_by(Rater.number)
    )
    columns = ["rater", "simulated", "created_at", "consent_at", "started_at", "finished_at"]
    frame = pd.DataFrame([tuple(r) for r in conn.execute(query)], columns=columns)
    for column in columns[2:]:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.astype({"simulated": "bool"})


def _check_draft(draft: StudyDraft) -> None:
    methods = {m.name for m in draft.methods}
    images = {(i.dataset, i.name) for i in draft.images}
    if len(methods) != len(draft.methods):
        raise SrevalError(f"study {draft.name!r} names a method twice")
    if len(images) != len(draft.images):
        raise SrevalError(f"study {draft.name!r} has an image twice")
    if not any(s.kind == "test" for s in draft.stimuli):
        raise SrevalError(f"study {draft.name!r} has no test stimuli")
    for s in draft.stimuli:
        if s.kind not in STIMULUS_KINDS:
            raise SrevalError(f"stimulus kind {s.kind!r} is not one of {', '.join(STIMULUS_KINDS)}")
        expected = None if s.kind == "test" else 5 if s.kind.endswith("_hr") else 1
        if s.expected != expected:
            raise SrevalError(f"a {s.kind} stimulus must expect {expected}, not {s.expected}")
        if (s.kind == "test") != (s.method is not None) or (s.method is not None and s.method not in methods):
            raise SrevalError(f"stimulus {s.public_id}: test items need one of the study's methods, others none")
        if (s.dataset, s.image) not in images:
            raise SrevalError(f"stimulus {s.public_id}: image {s.dataset}/{s.image} is not among the study's images")
        if not _inside(draft.folder, s.path).is_file():
            raise SrevalError(f"stimulus file {draft.folder / s.path} is missing")


# --- opening -----------------------------------------------------------------------------------------------


def open_study_store(url: str | None = None) -> StudyStore:
    """Open (creating or migrating as needed) the database at `url`, default `settings.db_url()` (`--db`, then
    SREVAL_DB): the same database and schema as the results store."""
    resolved = settings.db_url(url)
    masked = mask_url(resolved)
    engine = create_store_engine(resolved, masked, "study", concurrent_writers=True)
    try:
        with engine.begin() as conn:
            migrations.upgrade(conn)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise SrevalError(f"cannot open study database {masked}: {_reason(exc)}") from exc
    except SrevalError as exc:
        engine.dispose()
        raise SrevalError(f"study database {masked}: {exc}") from exc
    return StudyStore(engine, masked)

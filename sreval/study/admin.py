"""The admin side of the study store: create, list, invite, close, and read a study's progress and ratings.

Admin calls take the study name and may return everything about a study (methods, source images, files);
never show their results to raters. Studies are created with `sreval.study.builder.build_study`, which renders
the stimulus files and then calls `create_study`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import func, insert, select, update

from sreval.db.tables import Rater, Rating, ScheduleItem, Stimulus, Study, StudyImage, StudyMethod
from sreval.errors import ParameterError, SrevalError
from sreval.study.checks import as_int, check_draft, check_study_name, inside
from sreval.study.database import StudyDatabase, utc_now
from sreval.study.frames import described_stimuli, items_frame, method_label, problems_frame, raters_frame
from sreval.study.queries import insert_row, schedule_for, stimulus_keys, study_info, study_row
from sreval.study.records import EXPORT_COLUMNS, Invitation, StudyDraft, StudyInfo, StudyStatus
from sreval.study.schedule import rater_seed
from sreval.study.security import new_token, token_sha256
from sreval.vocabulary import CALIBRATION_KINDS, GOLD_KINDS, StimulusKind, failed_gold

log = logging.getLogger(__name__)

_MAX_INVITES = 10_000


class StudyAdmin(StudyDatabase):
    """The admin calls of an open study database."""

    def study_exists(self, name: str) -> bool:
        with self._errors("look up a study"), self._engine.connect() as conn:
            return conn.execute(select(Study.id).where(Study.name == name)).first() is not None

    def create_study(self, draft: StudyDraft) -> StudyInfo:
        """Store a study whose stimulus files already exist under `draft.folder`, in one transaction."""
        check_study_name(draft.name)
        check_draft(draft)
        folder = draft.folder.resolve()
        with self._errors(f"create study {draft.name!r} (nothing was stored)"), self._writing() as conn:
            if conn.execute(select(Study.id).where(Study.name == draft.name)).first() is not None:
                raise ParameterError("draft", f"a study named {draft.name!r} already exists in {self.url}")
            study_id = insert_row(
                conn,
                insert(Study).values(
                    name=draft.name,
                    created_at=utc_now(),
                    closed_at=None,
                    seed=draft.seed,
                    folder=str(folder),
                    settings=draft.settings,
                ),
            )
            method_ids = {
                m.name: insert_row(
                    conn, insert(StudyMethod).values(study_id=study_id, name=m.name, position=i, meta=m.metadata)
                )
                for i, m in enumerate(draft.methods)
            }
            image_ids = {
                (im.dataset, im.name): insert_row(
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
            return study_info(conn, study_row(conn, self.url, name, parameter="name"))

    def close_study(self, name: str) -> datetime:
        """Stop a study taking ratings (idempotent); return when it was closed."""
        with self._errors(f"close study {name!r}"), self._writing() as conn:
            # Locking the row waits for the submits under way (each shares it until it commits): `closed_at`
            # is taken after them, and every submit after this one sees the study closed.
            study = study_row(conn, self.url, name, lock=True, parameter="name")
            if study.closed_at is not None:
                already: datetime = study.closed_at
                return already
            closed_at = utc_now()
            conn.execute(update(Study).where(Study.id == study.id).values(closed_at=closed_at))
        log.info("closed study %s", name)
        return closed_at

    def invite(self, study: str, n: int, *, simulated: bool = False) -> list[Invitation]:
        """Add `n` raters, each with a token and their own stored order (from the study seed and their number).

        The tokens are returned once and never stored; print the links right away (`security.invite_link`).
        """
        if as_int(n) is None or not 1 <= n <= _MAX_INVITES:
            raise ParameterError("n", f"n (the number of raters to invite) must be 1 to {_MAX_INVITES}, got {n!r}")
        invitations: list[Invitation] = []
        with self._errors(f"invite raters to study {study!r} (nobody was invited)"), self._writing() as conn:
            row = study_row(conn, self.url, study)
            if row.closed_at is not None:
                raise SrevalError(f"study {study!r} is closed; it takes no new raters")
            kinds = stimulus_keys(conn, row.id)
            start = conn.execute(select(func.coalesce(func.max(Rater.number), 0)).where(Rater.study_id == row.id))
            first = int(start.scalar_one()) + 1
            now = utc_now()
            for number in range(first, first + n):
                token = new_token()
                seed = rater_seed(row.seed, number)
                public_id = f"{'s' if simulated else 'r'}{number:02d}"
                rater_id = insert_row(
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
                slots = schedule_for(row.settings, kinds, seed)
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
            row = study_row(conn, self.url, study)
            query = (
                described_stimuli(Stimulus.expected, Stimulus.path)
                .where(Stimulus.study_id == row.id)
                .order_by(Stimulus.id)
            )
            rows = [
                (p, k, method_label(k, m), d, i, e, str(inside(Path(row.folder), f)))
                for p, k, m, d, i, e, f in conn.execute(query)
            ]
        frame = pd.DataFrame(rows, columns=["public_id", "kind", "method", "dataset", "image", "expected", "path"])
        return frame.astype({"expected": "Int64"})

    def schedule(self, study: str, rater: str) -> pd.DataFrame:
        """Admin view of one rater's stored order: position, stimulus (public id), repetition, phase."""
        with self._errors(f"read a schedule of study {study!r}"), self._engine.connect() as conn:
            row = study_row(conn, self.url, study)
            query = (
                select(ScheduleItem.position, Stimulus.public_id, ScheduleItem.repetition, ScheduleItem.phase)
                .join(Stimulus, Stimulus.id == ScheduleItem.stimulus_id)
                .join(Rater, Rater.id == ScheduleItem.rater_id)
                .where(Rater.study_id == row.id, Rater.public_id == rater)
                .order_by(ScheduleItem.position)
            )
            rows = [tuple(r) for r in conn.execute(query)]
        if not rows:
            raise ParameterError("rater", f"study {study!r} has no rater {rater!r}")
        return pd.DataFrame(rows, columns=["position", "stimulus", "repetition", "phase"])

    def rater_seed(self, study: str, rater: str) -> int:
        """The stored seed of a rater's order (`schedule.build_schedule` rebuilds the order from it)."""
        with self._errors(f"read study {study!r}"), self._engine.connect() as conn:
            row = study_row(conn, self.url, study)
            seed = conn.execute(
                select(Rater.seed).where(Rater.study_id == row.id, Rater.public_id == rater)
            ).scalar_one_or_none()
        if seed is None:
            raise ParameterError("rater", f"study {study!r} has no rater {rater!r}")
        return int(seed)

    def status(self, study: str, *, include_simulated: bool = False) -> StudyStatus:
        """Progress per rater and per method, every failed gold item (`vocabulary.GOLD_RULE`), and the stimuli the app
        could not show.

        Simulated raters and their ratings are left out of all three tables unless `include_simulated`.
        """
        with self._errors(f"read the status of study {study!r}"), self._engine.connect() as conn:
            row = study_row(conn, self.url, study)
            info = study_info(conn, row)
            items = items_frame(conn, row.id)
            raters = raters_frame(conn, row.id)
            problems = problems_frame(conn, row.id)
        if not include_simulated:
            items = items[~items["simulated"]]
            raters = raters[~raters["simulated"]]
        rated = items[items["score"].notna()]

        failed = rated[failed_gold(rated["kind"], rated["score"]).to_numpy(dtype=bool)]
        calibration = rated[rated["kind"].isin(CALIBRATION_KINDS)]
        misses = calibration[calibration["score"] != calibration["expected"]]

        per_rater = raters.set_index("rater")
        per_rater["done"] = rated.groupby("rater").size()
        per_rater["total"] = items.groupby("rater").size()
        per_rater["gold_failures"] = failed.groupby("rater").size()
        per_rater["calibration_misses"] = misses.groupby("rater").size()
        counts = ["done", "total", "gold_failures", "calibration_misses"]
        per_rater[counts] = per_rater[counts].fillna(0).astype("int64")

        tests = items[items["kind"] == StimulusKind.TEST]
        tests_rated = tests[tests["score"].notna()]
        per_method = pd.DataFrame(index=pd.Index(info.methods, name="method"))
        per_method["done"] = tests_rated.groupby("method").size()
        per_method["total"] = tests.groupby("method").size()
        per_method[["done", "total"]] = per_method[["done", "total"]].fillna(0).astype("int64")
        per_method["mean_score"] = _mean_scores(tests_rated)

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
            row = study_row(conn, self.url, study)
            items = items_frame(conn, row.id)
        rated = items[items["score"].notna()]
        if not include_simulated:
            rated = rated[~rated["simulated"]]
        if not include_gold:
            rated = rated[~rated["kind"].isin(GOLD_KINDS)]
        if not include_calibration:
            rated = rated[~rated["kind"].isin(CALIBRATION_KINDS)]
        frame = rated.loc[:, list(EXPORT_COLUMNS)].reset_index(drop=True)
        return frame.astype({"repetition": "int64", "score": "int64", "response_ms": "Int64", "simulated": "bool"})

    def ratings(self, study: str) -> pd.DataFrame:
        """Every rating of `study` for an analysis: all kinds, simulated raters too (`export` with everything
        included); `SrevalError` when it has none yet."""
        frame = self.export(study, include_simulated=True, include_gold=True, include_calibration=True)
        if frame.empty:
            raise SrevalError(f"study {study} has no ratings yet")
        return frame


def _mean_scores(ratings: pd.DataFrame) -> pd.Series:
    """The plain mean score per method of `ratings`: the progress figure of `status`, not an estimate (the
    analysis computes MOS per method and dataset, with intervals, from the exported ratings)."""
    return ratings.groupby("method")["score"].mean().astype("float64")

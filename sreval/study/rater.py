"""The rater side of the study store: what the rater app may call, with the token of the rater's link.

Rater calls never return anything that names a method or a source image:

    view = store.rater_for_token(token)          # landing page: None = invalid link
    store.give_consent(token)                    # consent page
    anchors = store.calibration_anchors(token)   # the two ends of the scale, shown before calibration
    item = store.next_item(token)                # rating page: None = finished; item.image_path is the file
    store.submit(token, item.stimulus, item.repetition, score, response_ms)

and `image_path` / `report_problem` for the images the app shows or cannot show.

Integrity rules, enforced here and by the database itself (CHECK, UNIQUE and foreign-key constraints):

* every `submit` is its own short transaction; a refused one (`RequestRefused`, with a `reason`) changes nothing;
* a rating is for exactly the rater's next due item (resuming a link continues there), with a whole score of the
  ACR scale; (rater, stimulus, repetition) is unique, so a replayed submit of the same score answers
  `already_recorded` and changes nothing, and a different score for a rated item is refused;
* a finished rater, a closed study, an unknown token or a stimulus outside the rater's schedule get nothing;
* image files are only returned for stimuli of the asking rater's schedule, and only inside the study folder.

Calibration answers are stored as ratings of the calibration stimuli (`vocabulary.CALIBRATION_KINDS`, the
intended score in the stimulus's `expected`), not in a table of their own: one uniqueness rule, one resume rule
and one transaction path for every answer; `export` and `status` tell them apart by `kind`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from sreval.db.engine import reason
from sreval.db.tables import Problem, Rater, Rating, ScheduleItem, Stimulus
from sreval.errors import SrevalError
from sreval.study.checks import (
    check_public_id,
    check_repetition,
    check_response_ms,
    check_score,
    inside,
    token_key,
)
from sreval.study.database import StudyDatabase, utc_now
from sreval.study.queries import (
    due_item,
    rater_row,
    rater_view,
    scheduled_stimulus,
    submit_state,
)
from sreval.study.records import Anchor, Item, RaterView, Refusal, RequestRefused, SubmitResult
from sreval.vocabulary import HIGHEST_SCORE, LOWEST_SCORE

log = logging.getLogger(__name__)

_INVALID_LINK = "this link is not valid; use the link you were sent"
_CLOSED = "this study is closed; thank you for your interest"
_NO_CONSENT = "please give your consent before rating"
_MAX_PROBLEM = 500
_INSERT_RATING = insert(Rating)


class RaterSide(StudyDatabase):
    """The rater calls of an open study database (all the rater app's rater pages may use)."""

    def rater_for_token(self, token: str) -> RaterView | None:
        """The rater of a link's token, or None when the token is not one of ours."""
        key = token_key(token)
        if key is None:
            return None
        with self._errors("look up a rater"), self._engine.connect() as conn:
            rater = rater_row(conn, key)
            if rater is None:
                return None
            return rater_view(conn, rater)

    def give_consent(self, token: str) -> RaterView:
        """Record that the rater agreed to take part (once; later calls keep the first time)."""
        key = token_key(token)
        with self._errors("record consent"), self._writing() as conn:
            rater = self._open_rater(conn, key)
            if rater.consent_at is None:
                conn.execute(update(Rater).where(Rater.id == rater.id).values(consent_at=utc_now()))
            rater = self._open_rater(conn, key)
            return rater_view(conn, rater)

    def next_item(self, token: str) -> Item | None:
        """The rater's next due item (the first unrated position: returning with a link resumes there), or None
        when they have rated everything."""
        key = token_key(token)
        with self._errors("read the next item"), self._engine.connect() as conn:
            rater = self._open_rater(conn, key, consent=True)
            due = due_item(conn, rater.id)
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
                image_path=inside(Path(rater.folder), due.path),
                anchor=due.expected if due.phase == "calibration" else None,
            )

    def calibration_anchors(self, token: str) -> list[Anchor]:
        """The two ends of the scale for the anchors page: a stimulus of the top score and one of the bottom
        score from the rater's own calibration items (top first), of the same source image when there is one
        with both (so the two differ only in quality; the first such image in the rater's order), else any;
        empty when the rater has no calibration items. Only the public stimulus ids reach the caller."""
        key = token_key(token)
        with self._errors("read the calibration anchors"), self._engine.connect() as conn:
            rater = self._open_rater(conn, key, consent=True)
            rows = conn.execute(
                select(Stimulus.public_id, Stimulus.expected, Stimulus.image_id)
                .join(ScheduleItem, ScheduleItem.stimulus_id == Stimulus.id)
                .where(ScheduleItem.rater_id == rater.id, ScheduleItem.phase == "calibration")
                .order_by(ScheduleItem.position)
            ).all()
        ends = (HIGHEST_SCORE, LOWEST_SCORE)
        by_image: dict[int, dict[int, str]] = {}
        for public_id, expected, image_id in rows:
            if expected is not None:  # always set for calibration items (`create_study` checks it)
                by_image.setdefault(int(image_id), {})[int(expected)] = str(public_id)
        for found in by_image.values():  # in the rater's calibration order
            if all(score in found for score in ends):
                return [Anchor(score, found[score]) for score in ends]
        anyone = {score: public_id for found in by_image.values() for score, public_id in found.items()}
        return [Anchor(score, anyone[score]) for score in ends if score in anyone]

    def image_path(self, token: str, stimulus: str) -> Path:
        """The image file of `stimulus`, only if it is in this rater's schedule (of an open study) and the file
        is inside the study folder; `RequestRefused` otherwise."""
        key = token_key(token)
        with self._errors("look up an image"), self._engine.connect() as conn:
            rater = self._open_rater(conn, key)
            _, path = scheduled_stimulus(conn, rater.id, stimulus)
        return inside(Path(rater.folder), path)

    def report_problem(self, token: str, stimulus: str, problem: str) -> None:
        """Record that `stimulus` (of this rater's schedule) could not be shown to the rater: `problem` says why,
        for the admin (`status`). The app offers no answer for such an item, so nothing gets rated."""
        key = token_key(token)
        with self._errors("record a problem"), self._writing() as conn:
            rater = self._open_rater(conn, key)
            stimulus_id, _ = scheduled_stimulus(conn, rater.id, stimulus)
            text = " ".join(str(problem).split())[:_MAX_PROBLEM] or "unknown problem"
            conn.execute(
                insert(Problem).values(rater_id=rater.id, stimulus_id=stimulus_id, problem=text, created_at=utc_now())
            )
        log.warning("study %s, rater %s: stimulus %s cannot be shown: %s", rater.study, rater.public_id, stimulus, text)

    def submit(
        self, token: str, stimulus: str, repetition: int, score: int, response_ms: float | None = None
    ) -> SubmitResult:
        """Store one rating in its own transaction.

        `score` must be a whole score of the ACR scale and (`stimulus`, `repetition`) the rater's next due item.
        Replaying a stored rating with the same score returns `already_recorded` and changes nothing; anything
        else that is wrong raises `RequestRefused` (its `reason` says what) and changes nothing either.

        The transaction is one SELECT that reads everything checked (`_SUBMIT_STATE`) and one INSERT, plus an
        UPDATE of the rater on their first and last item: it is what every rater waits for, and on SQLite it
        holds the database's write lock. On PostgreSQL the SELECT locks the rater's row (one rater's submits run
        one after the other) and shares the study's row, so `close_study` waits for the submits under way and
        every later one sees the study closed. A connection the server dropped is retried once on a new one:
        a submit is idempotent (a replay is answered as already recorded).
        """
        score = check_score(score)
        repetition = check_repetition(repetition)
        response = check_response_ms(response_ms)
        key = token_key(token)
        public_id = check_public_id(stimulus)
        if key is None:
            raise RequestRefused(Refusal.INVALID_TOKEN, _INVALID_LINK)
        for attempt in (1, 2):
            try:
                return self._submit(key, public_id, repetition, score, response)
            except IntegrityError:
                # The same item was stored by a concurrent submit between our check and our insert (the unique
                # constraint caught it): answer as for a replay.
                with self._errors("record the rating"), self._engine.connect() as conn:
                    state = submit_state(conn, key, public_id, repetition, lock=False)
                    if state is None or state.stored is None:
                        raise
                    return _replayed(state, score)
            except DBAPIError as exc:
                if exc.connection_invalidated and attempt == 1:
                    log.warning("the study database dropped a connection; submitting again on a new one")
                    continue
                raise SrevalError(f"could not record the rating in study database {self.url}: {reason(exc)}") from exc
            except SQLAlchemyError as exc:
                raise SrevalError(f"could not record the rating in study database {self.url}: {reason(exc)}") from exc
        raise AssertionError("unreachable")

    def _submit(self, key: str, public_id: str, repetition: int, score: int, response: int | None) -> SubmitResult:
        with self._writing() as conn:
            state = submit_state(conn, key, public_id, repetition, lock=True)
            if state is None:
                raise RequestRefused(Refusal.INVALID_TOKEN, _INVALID_LINK)
            if state.closed_at is not None:
                raise RequestRefused(Refusal.STUDY_CLOSED, _CLOSED)
            if state.consent_at is None:
                raise RequestRefused(Refusal.NO_CONSENT, _NO_CONSENT)
            if state.slot_stimulus is None:
                raise RequestRefused(Refusal.UNKNOWN_STIMULUS, "this item is not part of your study")
            if state.stored is not None:
                return _replayed(state, score)
            if state.finished_at is not None:
                raise RequestRefused(Refusal.FINISHED, "you have rated every item; thank you")
            if state.due != state.slot_position:
                raise RequestRefused(Refusal.NOT_DUE, "this is not the item you are due to rate; reload the page")
            now = utc_now()
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

    def _open_rater(self, conn: Connection, key: str | None, *, consent: bool = False, lock: bool = False) -> Any:
        """The rater of a token hash in an open study, or `RequestRefused`."""
        rater = rater_row(conn, key, lock=lock) if key is not None else None
        if rater is None:
            raise RequestRefused(Refusal.INVALID_TOKEN, _INVALID_LINK)
        if rater.closed_at is not None:
            raise RequestRefused(Refusal.STUDY_CLOSED, _CLOSED)
        if consent and rater.consent_at is None:
            raise RequestRefused(Refusal.NO_CONSENT, _NO_CONSENT)
        return rater


def _replayed(state: Any, score: int) -> SubmitResult:
    """The answer to a submit of an item already rated: the same score is a replay, another one a conflict."""
    if state.stored != score:
        raise RequestRefused(Refusal.CONFLICT, "this item is already rated; a rating cannot be changed")
    done, total = int(state.done), int(state.total)
    return SubmitResult("already_recorded", done, total, done == total)

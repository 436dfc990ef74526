"""The rater side of the study store: resuming, refusals that change nothing, the database constraints
behind the checks, image files only for the rater's own items, concurrent identical submits.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from db_helpers import execute
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError
from study_helpers import N_CALIBRATION, PER_RATER, STUDY, counts, rate, snapshot

from sreval.errors import SrevalError
from sreval.imageio import save_png
from sreval.study import (
    DraftImage,
    DraftMethod,
    DraftStimulus,
    Refusal,
    RequestRefused,
    StudyDraft,
    StudyStore,
    open_study_store,
)
from sreval.vocabulary import HIGHEST_SCORE, LOWEST_SCORE


def test_rating_resumes_and_a_finished_rater_cannot_rate(store: StudyStore, url: str) -> None:
    (rater, token), _ = store.invite(STUDY, 2)
    view = store.rater_for_token(token)
    assert view is not None and not view.consent_given and not view.finished and not view.closed
    with pytest.raises(RequestRefused) as refused:
        store.next_item(token)
    assert refused.value.reason == Refusal.NO_CONSENT
    assert store.give_consent(token).consent_given
    first = store.next_item(token)
    assert first is not None and first.phase == "calibration" and first.position == 0 and first.total == PER_RATER
    assert first.anchor in (1, 5) and first.image_path.is_file() and first.phase_total == N_CALIBRATION

    answered = rate(store, token, 6)
    assert [i.position for i in answered] == list(range(6))
    assert [i.phase for i in answered] == ["calibration"] * 4 + ["test"] * 2
    assert all(i.anchor is None for i in answered[4:]) and answered[4].phase_position == 0
    store.close()

    with open_study_store(url) as reopened:  # the same link, later: resumes at the next unrated item
        view = reopened.rater_for_token(token)
        assert view is not None and (view.done, view.total, view.finished) == (6, PER_RATER, False)
        resumed = reopened.next_item(token)
        assert resumed is not None and resumed.position == 6 and resumed.phase_position == 2
        assert resumed.stimulus == reopened.schedule(STUDY, rater)["stimulus"][6]
        last = rate(reopened, token)[-1]
        view = reopened.rater_for_token(token)
        assert view is not None and view.finished and view.done == PER_RATER
        assert reopened.next_item(token) is None
        before = snapshot(url)
        replay = reopened.submit(token, last.stimulus, last.repetition, 3, 999)
        assert (replay.status, replay.finished) == ("already_recorded", True)
        with pytest.raises(RequestRefused) as refused:
            reopened.submit(token, last.stimulus, last.repetition, 4, 999)
        assert refused.value.reason == Refusal.CONFLICT
        assert snapshot(url) == before
        status = reopened.status(STUDY).raters.set_index("rater")
        assert status.loc[rater, "started_at"] <= status.loc[rater, "finished_at"]
        assert pd.isna(status.loc["r02", "consent_at"]) and pd.isna(status.loc["r02", "started_at"])


def test_every_bad_request_is_refused_and_changes_nothing(store: StudyStore, url: str, tmp_path: Path) -> None:
    (_, token), (_, other_token) = store.invite(STUDY, 2)
    store.give_consent(token)
    rate(store, token, 5)
    due = store.next_item(token)
    assert due is not None
    schedule = store.schedule(STUDY, "r01")
    rated = schedule.iloc[4]
    later = schedule.iloc[7]
    not_retested = next(s for s in schedule["stimulus"] if (schedule["stimulus"] == s).sum() == 1)
    other_due = store.schedule(STUDY, "r02").iloc[0]
    assert other_due["stimulus"] != due.stimulus

    # A second study, made by hand: its stimulus ids are foreign to the pilot's raters and the other way round.
    save_png(tmp_path / "other" / "x.png", np.zeros((8, 8, 3), np.uint8))
    store.create_study(StudyDraft(
        "other", tmp_path / "other", 1, {"retest": 0.0},
        [DraftMethod("m", {})], [DraftImage("set5", "bird", "0" * 64)],
        [DraftStimulus("foreignstimulus1", "test", "m", "set5", "bird", "x.png", None)],
    ))  # fmt: skip
    ((_, foreign_token),) = store.invite("other", 1)
    store.give_consent(foreign_token)

    def refused(reason: Refusal, *args: Any) -> None:
        before = snapshot(url)
        with pytest.raises(RequestRefused) as caught:
            store.submit(*args)
        assert caught.value.reason == reason, caught.value
        assert snapshot(url) == before

    s, r = due.stimulus, due.repetition
    not_a_number: Any = "abc"
    for score in (0, 6, -1, not_a_number, "3", 3.0, 2.5, True, None, float("nan")):
        refused(Refusal.BAD_SCORE, token, s, r, score, 100)
    for repetition in (0, 3, "1", None):
        refused(Refusal.BAD_REPETITION, token, s, repetition, 3, 100)
    for response_ms in (-1, float("nan"), float("inf"), "fast", 2**31):
        refused(Refusal.BAD_RESPONSE_TIME, token, s, r, 3, response_ms)
    for stimulus in ("AAAAAAAAAAAAAAAA", "", "x" * 1000, None, "foreignstimulus1"):
        refused(Refusal.UNKNOWN_STIMULUS, token, stimulus, r, 3, 100)
    refused(Refusal.UNKNOWN_STIMULUS, token, not_retested, 2, 3, 100)  # not a retest item: no second showing
    refused(Refusal.UNKNOWN_STIMULUS, foreign_token, s, r, 3, 100)  # a pilot item with another study's token
    for token_ in ("forged", "", token + "x", token.upper(), "x" * 10_000, None):
        refused(Refusal.INVALID_TOKEN, token_, s, r, 3, 100)
    refused(Refusal.NOT_DUE, token, later["stimulus"], int(later["repetition"]), 3, 100)  # skipping ahead
    refused(Refusal.NO_CONSENT, other_token, other_due["stimulus"], 1, 3, 100)
    store.give_consent(other_token)
    refused(Refusal.NOT_DUE, other_token, s, r, 3, 100)  # another rater's item (their due item differs)
    refused(Refusal.CONFLICT, token, rated["stimulus"], int(rated["repetition"]), 5, 100)  # changing a rating
    before = snapshot(url)
    assert store.submit(token, rated["stimulus"], int(rated["repetition"]), 3, 1500).status == "already_recorded"
    assert snapshot(url) == before

    assert store.submit(token, s, r, 4, 100).status == "recorded"  # the same store still takes a good rating
    store.close_study(STUDY)
    due = store.next_item(foreign_token)  # the other study is still open
    assert due is not None
    refused(Refusal.STUDY_CLOSED, other_token, other_due["stimulus"], 1, 3, 100)
    for call in (store.next_item, store.give_consent, lambda t: store.image_path(t, s)):
        with pytest.raises(RequestRefused) as caught:
            call(token)
        assert caught.value.reason == Refusal.STUDY_CLOSED
    view = store.rater_for_token(token)
    assert view is not None and view.closed
    assert store.close_study(STUDY) == store.study(STUDY).closed_at  # closing again changes nothing
    with pytest.raises(SrevalError, match="closed"):
        store.invite(STUDY, 1)


def test_database_constraints_back_the_checks(store: StudyStore, url: str) -> None:
    """Even a caller that bypasses `submit` cannot store a score outside 1..5, a duplicate, or an unscheduled item."""
    ((_, token),) = store.invite(STUDY, 1)
    store.give_consent(token)
    rate(store, token, 1)
    insert = "INSERT INTO study_ratings (rater_id, stimulus_id, repetition, score, created_at, simulated) VALUES "
    slot = "SELECT rater_id, stimulus_id, repetition FROM study_schedule WHERE position = :p"
    engine = create_engine(url)
    try:
        for position, score, unscheduled, error in (
            (1, 0, False, "CHECK constraint failed: ck_study_ratings_score"),
            (1, 6, False, "CHECK constraint failed: ck_study_ratings_score"),
            (0, 3, False, "UNIQUE constraint failed"),  # position 0 is rated already
            (1, 3, True, "FOREIGN KEY constraint failed"),
        ):
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")
                rater_id, stimulus_id, repetition = conn.execute(text(slot), {"p": position}).one()
                if unscheduled:
                    stimulus_id = conn.execute(text("SELECT MAX(id) + 100 FROM study_stimuli")).scalar_one()
                values = f"({rater_id}, {stimulus_id}, {repetition}, {score}, '2024-01-01 00:00:00', 0)"
                with pytest.raises(IntegrityError, match=error):
                    conn.execute(text(insert + values))
    finally:
        engine.dispose()
    assert counts(url)["study_ratings"] == 1


def test_image_path_only_for_the_raters_own_items(store: StudyStore, url: str) -> None:
    ((_, token),) = store.invite(STUDY, 1)
    own = store.schedule(STUDY, "r01")["stimulus"][5]
    path = store.image_path(token, own)  # allowed before consent: the app may preload
    assert path.is_file() and path.parent == store.study(STUDY).folder
    for stimulus in ("AAAAAAAAAAAAAAAA", "../study.sqlite", "", path.name, path.stem):
        with pytest.raises(RequestRefused) as caught:
            store.image_path(token, stimulus)
        assert caught.value.reason == Refusal.UNKNOWN_STIMULUS
    with pytest.raises(RequestRefused, match="not valid"):
        store.image_path("forged", own)
    # a path altered in the database must not lead outside the study folder
    execute(url, "UPDATE study_stimuli SET path = '../../etc/passwd' WHERE public_id = :p", p=own)
    with pytest.raises(SrevalError, match="leaves the study folder"):
        store.image_path(token, own)


def test_concurrent_identical_submits_store_one_rating(store: StudyStore, url: str) -> None:
    ((_, token),) = store.invite(STUDY, 1)
    store.give_consent(token)
    item = store.next_item(token)
    assert item is not None
    barrier = threading.Barrier(6)
    results: list[str] = []

    def submit() -> None:
        barrier.wait()
        results.append(store.submit(token, item.stimulus, item.repetition, 2, 800).status)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["already_recorded"] * 5 + ["recorded"]
    assert counts(url)["study_ratings"] == 1


def test_calibration_anchors_are_the_raters_own_ends_of_the_scale(store: StudyStore) -> None:
    """The rater side gives the anchors page a top and a bottom example from the rater's own calibration items,
    of one source image (so they differ only in quality), as public stimulus ids only."""
    ((rater, token),) = store.invite(STUDY, 1)
    with pytest.raises(RequestRefused) as refused:
        store.calibration_anchors(token)
    assert refused.value.reason == Refusal.NO_CONSENT
    with pytest.raises(RequestRefused) as refused:
        store.calibration_anchors("forged")
    assert refused.value.reason == Refusal.INVALID_TOKEN
    store.give_consent(token)

    anchors = store.calibration_anchors(token)
    assert [anchor.score for anchor in anchors] == [HIGHEST_SCORE, LOWEST_SCORE]
    schedule = store.schedule(STUDY, rater)
    own = set(schedule.loc[schedule["phase"] == "calibration", "stimulus"])
    assert {anchor.stimulus for anchor in anchors} <= own
    stimuli = store.stimuli(STUDY).set_index("public_id")
    described = stimuli.loc[[anchor.stimulus for anchor in anchors]]
    assert described["kind"].tolist() == ["calibration_hr", "calibration_nn"]
    assert described["expected"].tolist() == [HIGHEST_SCORE, LOWEST_SCORE]
    assert described["image"].nunique() == 1
    rate(store, token)  # rating does not change them
    assert store.calibration_anchors(token) == anchors

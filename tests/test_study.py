"""MOS studies: building (opaque files, reproducible orders), the rater API and its refusals, concurrency,
simulation, status, export, migration and the `sreval study` CLI, on a real SQLite file (and PostgreSQL).

One small study (Set5 bird/butterfly/head × nn, bicubic; 1 gold image; 2 calibration images; 2 retest items) is
rendered once per module; tests that write get their own copy of its database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from sreval.benchmark.cache import Cache
from sreval.cli import main
from sreval.datasets.registry import get_dataset, load_hr
from sreval.db.tables import Base
from sreval.errors import SrevalError
from sreval.imageio import load_image, save_png
from sreval.results import open_store
from sreval.study import (
    EXPORT_COLUMNS,
    Item,
    Refusal,
    RequestRefused,
    StudyStore,
    check_admin_password,
    hash_password,
    invite_link,
    open_study_store,
)
from sreval.study import DraftImage, DraftMethod, DraftStimulus, StudyDraft
from sreval.study.builder import build_study
from sreval.study.schedule import build_schedule, rater_seed, retest_count
from sreval.study.security import token_sha256
from sreval.study.simulate import simulate

STUDY = "pilot"
IMAGES = ["bird", "butterfly", "head"]
SEED = 11
#: Per rater: 2 calibration images x (HR, NN), 3 images x 2 methods, 1 gold image x (HR, NN), 2 retest items.
N_CALIBRATION, N_TEST, N_GOLD, N_RETEST = 4, 6, 2, 2
PER_RATER = N_CALIBRATION + N_TEST + N_GOLD + N_RETEST
STUDY_TABLES = [t for t in Base.metadata.tables if t == "studies" or t.startswith("study_")]


def make_calibration_folder(folder: Path, n: int = 3) -> Path:
    """Images outside the test set: seeded noise."""
    rng = np.random.default_rng(5)
    for i in range(n):
        save_png(folder / f"cal{i}.png", rng.integers(0, 256, (48 + 4 * i, 64, 3), dtype=np.uint8))
    return folder


def build(store: StudyStore, root: Path, data_root: Path, cache: Path, name: str = STUDY) -> None:
    build_study(
        store, name, "nn,bicubic", "set5", data_root=data_root, images=IMAGES, retest=0.34, gold_images=1,
        calibration_images=2, calibration_dir=make_calibration_folder(root / "calibration"),
        folder=root / "stimuli", seed=SEED, cache=Cache(cache),
    )  # fmt: skip


@pytest.fixture(scope="module")
def sr_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SR outputs shared by every study built in this module (rendering is the slow part)."""
    return tmp_path_factory.mktemp("sr-cache")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, data_root: Path, sr_cache: Path) -> Path:
    """The pilot study, built once: its database file (copied per test) and its stimulus folder."""
    root = tmp_path_factory.mktemp("template")
    with open_study_store(f"sqlite:///{root / 'study.sqlite'}") as store:
        build(store, root, data_root, sr_cache)
    return root


@pytest.fixture
def url(template: Path, tmp_path: Path) -> str:
    """A private copy of the pilot study's database (the stimulus files stay shared and are only read)."""
    for suffix in ("", "-wal"):
        if (template / f"study.sqlite{suffix}").exists():
            shutil.copy(template / f"study.sqlite{suffix}", tmp_path / f"study.sqlite{suffix}")
    return f"sqlite:///{tmp_path / 'study.sqlite'}"


@pytest.fixture
def store(url: str) -> Iterator[StudyStore]:
    with open_study_store(url) as opened:
        yield opened


def counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in STUDY_TABLES}
    finally:
        engine.dispose()


def snapshot(url: str) -> tuple[dict[str, int], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Everything a refused request must leave as it was: row counts, every rating, every rater's state."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ratings = [tuple(r) for r in conn.execute(text("SELECT * FROM study_ratings ORDER BY id"))]
            raters = [tuple(r) for r in conn.execute(text("SELECT * FROM study_raters ORDER BY id"))]
            closed = [tuple(r) for r in conn.execute(text("SELECT id, closed_at FROM studies ORDER BY id"))]
    finally:
        engine.dispose()
    return counts(url), ratings, raters + closed


def rate(store: StudyStore, token: str, n: int | None = None, score: int = 3) -> list[Item]:
    """Answer the next `n` items (all when None) with `score`; return the items answered."""
    answered = []
    while (n is None or len(answered) < n) and (item := store.next_item(token)) is not None:
        store.submit(token, item.stimulus, item.repetition, score, 1500)
        answered.append(item)
    return answered


def kinds(store: StudyStore) -> dict[str, str]:
    return dict(zip(store.stimuli(STUDY)["public_id"], store.stimuli(STUDY)["kind"], strict=True))


# --- building ---------------------------------------------------------------------------------------------


def test_study_contents(store: StudyStore, data_root: Path) -> None:
    info = store.study(STUDY)
    assert info.methods == ["nn", "bicubic"] and info.seed == SEED and info.raters == 0
    assert info.stimuli == {"test": 6, "gold_hr": 1, "gold_nn": 1, "calibration_hr": 2, "calibration_nn": 2}
    assert info.settings["retest"] == 0.34 and info.settings["datasets"] == ["set5"]
    stimuli = store.stimuli(STUDY)
    assert set(stimuli.query("kind == 'test'")["image"]) == set(IMAGES)
    calibration = set(stimuli.query("dataset == 'calibration'")["image"])
    assert len(calibration) == 2 and calibration <= {"cal0.png", "cal1.png", "cal2.png"}
    assert stimuli.query("kind == 'test'")["expected"].isna().all()
    for kind, value in {"gold_hr": 5, "gold_nn": 1, "calibration_hr": 5, "calibration_nn": 1}.items():
        assert stimuli.query(f"kind == '{kind}'")["expected"].tolist() == [value] * (2 if "calib" in kind else 1)
    # The files hold what the rows say: gold HR is the mod-cropped HR, gold NN the same pixels as the NN test item.
    gold_hr, gold_nn = (stimuli.query(f"kind == '{k}'").iloc[0] for k in ("gold_hr", "gold_nn"))
    hr = load_hr(get_dataset("set5").image(gold_hr["image"]), data_root)
    assert np.array_equal(load_image(gold_hr["path"]).pixels, hr.pixels)
    nn = stimuli.query(f"kind == 'test' and method == 'nn' and image == '{gold_nn['image']}'").iloc[0]
    assert np.array_equal(load_image(gold_nn["path"]).pixels, load_image(nn["path"]).pixels)


def test_nothing_a_rater_sees_names_method_or_image(store: StudyStore, template: Path) -> None:
    stimuli = store.stimuli(STUDY)
    files = sorted((template / "stimuli").iterdir())
    assert len(files) == len(stimuli) == N_CALIBRATION + N_TEST + N_GOLD
    assert {str(f) for f in files} == set(stimuli["path"])
    names = ["bicubic", "nearest", "bird", "butterfly", "head", "set5", "calibration", "cal0", "cal1", "cal2", "gold"]
    for value in [*stimuli["public_id"], *(f.name for f in files)]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}(\.png)?", value), value
        assert not any(n in value.lower() for n in names), value
    assert stimuli["public_id"].is_unique and len({f.stem for f in files} & set(stimuli["public_id"])) == 0
    for f in files:  # re-encoded from pixels: no text chunks that could carry a source file's name
        data = f.read_bytes()
        assert not any(chunk in data for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf"))
    # What the app gets for an item: no method, image, dataset or kind.
    assert {f.name for f in dataclasses.fields(Item)} == {
        "stimulus", "repetition", "phase", "position", "total", "phase_position", "phase_total", "image_path", "anchor",
    }  # fmt: skip


def test_failed_build_leaves_no_files_and_no_rows(
    tmp_path: Path, data_root: Path, sr_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    with open_study_store(url) as store:
        monkeypatch.setattr(StudyStore, "create_study", lambda self, draft: (_ for _ in ()).throw(SrevalError("boom")))
        with pytest.raises(SrevalError, match="boom"):
            build(store, tmp_path, data_root, sr_cache)
        assert not (tmp_path / "stimuli").exists()
        monkeypatch.undo()
        with pytest.raises(SrevalError, match="no output for set5"):
            build_study(store, "x", f"folder:{tmp_path}", "set5", data_root=data_root, calibration_images=0)
        with pytest.raises(SrevalError, match="holds only 3"):
            build_study(store, "x", "nn", "set5", data_root=data_root, calibration_images=4,
                        calibration_dir=tmp_path / "calibration", folder=tmp_path / "x")  # fmt: skip
        with pytest.raises(SrevalError, match="not allowed"):
            build_study(store, "../evil", "nn", "set5", data_root=data_root)
    assert set(counts(url).values()) == {0}


# --- orders -----------------------------------------------------------------------------------------------


def test_orders_are_stored_reproducible_and_spread(store: StudyStore, url: str) -> None:
    invitations = store.invite(STUDY, 4)
    stimuli = store.stimuli(STUDY)
    by_kind = {
        k: [i for i, kind in enumerate(stimuli["kind"]) if kind.startswith(k)] for k in ("calib", "test", "gold")
    }
    orders = []
    for number, (rater, _) in enumerate(invitations, start=1):
        seed = store.rater_seed(STUDY, rater)
        assert seed == rater_seed(SEED, number)
        stored = store.schedule(STUDY, rater)
        rebuilt = build_schedule(by_kind["calib"], by_kind["test"], by_kind["gold"], seed=seed, retest=0.34)
        assert [(stimuli["public_id"][s.stimulus], s.repetition, s.phase) for s in rebuilt] == list(
            stored[["stimulus", "repetition", "phase"]].itertuples(index=False, name=None)
        )
        assert list(stored["position"]) == list(range(PER_RATER))
        assert list(stored["phase"]) == ["calibration"] * N_CALIBRATION + ["test"] * (PER_RATER - N_CALIBRATION)
        test_phase = stored[stored["phase"] == "test"]
        assert set(test_phase["stimulus"]) == set(stimuli.query("kind in ['test', 'gold_hr', 'gold_nn']")["public_id"])
        repeated = test_phase[test_phase["repetition"] == 2]["stimulus"]
        assert len(repeated) == N_RETEST == retest_count(N_TEST, 0.34)
        assert set(repeated) <= set(stimuli.query("kind == 'test'")["public_id"])
        for stimulus in repeated:
            first, second = stored[stored["stimulus"] == stimulus].sort_values("repetition")["position"]
            assert second - first >= 5
        orders.append(list(stored["stimulus"]))
    assert len({tuple(o) for o in orders}) == len(orders), "every rater gets an order of their own"
    with open_study_store(url) as reopened:
        assert reopened.schedule(STUDY, invitations[0].rater)["stimulus"].tolist() == orders[0]


def test_schedule_edge_cases() -> None:
    one = build_schedule([], [7], [], seed=1, retest=1.0)
    assert [(s.stimulus, s.repetition) for s in one] == [(7, 1), (7, 2)]  # nothing else to put between them
    tiny = build_schedule([], [1, 2, 3], [], seed=2, retest=0.34, min_gap=10)
    positions = [i for i, s in enumerate(tiny) if s.stimulus == next(s.stimulus for s in tiny if s.repetition == 2)]
    assert positions[1] - positions[0] >= 2, "as far apart as the length allows, never adjacent when avoidable"
    for seed in range(50):
        order = build_schedule([100, 101], list(range(40)), [50, 51, 52, 53], seed=seed, retest=0.25, min_gap=8)
        assert order == build_schedule([100, 101], list(range(40)), [50, 51, 52, 53], seed=seed, retest=0.25, min_gap=8)
        keys = [s.stimulus for s in order]
        assert keys[:2] in ([100, 101], [101, 100]) and len(order) == 2 + 40 + 4 + 10
        for key in {s.stimulus for s in order if s.repetition == 2}:
            first, second = (i for i, k in enumerate(keys) if k == key)
            assert second - first >= 8
        # Without retest copies, gold item k sits in the k-th of four equal stretches of the 40 test items.
        plain = [s.stimulus for s in build_schedule([], list(range(40)), [50, 51, 52, 53], seed=seed, retest=0)]
        gold = [i for i, k in enumerate(plain) if k >= 50]
        assert all(10 * k <= p - k <= 10 * k + 10 for k, p in enumerate(gold)), gold
    assert retest_count(0, 0.5) == 0 and retest_count(10, 0) == 0 and retest_count(10, 0.01) == 1


# --- invitations and secrets ------------------------------------------------------------------------------


def test_invite_gives_long_unique_tokens_and_stores_only_hashes(store: StudyStore, url: str) -> None:
    invitations = store.invite(STUDY, 5)
    assert [i.rater for i in invitations] == ["r01", "r02", "r03", "r04", "r05"]
    tokens = [i.token for i in invitations]
    assert len(set(tokens)) == 5 and all(len(t) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", t) for t in tokens)
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = set(conn.execute(text("SELECT token_sha256 FROM study_raters")).scalars())
    engine.dispose()
    assert stored == {token_sha256(t) for t in tokens} == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    store.close()
    database = Path(url.removeprefix("sqlite:///"))
    data = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert not any(t.encode() in data for t in tokens), "a token was written to the database"
    with open_study_store(url) as again:
        view = again.rater_for_token(tokens[2])
        assert view is not None and view.rater == "r03" and view.total == PER_RATER and view.done == 0
        assert again.invite(STUDY, 1)[0].rater == "r06"


def test_invite_links() -> None:
    assert invite_link("https://mos.example.org", "abc") == "https://mos.example.org/?token=abc"
    assert invite_link("http://host:8501/app?lang=de&token=old", "t-_1") == "http://host:8501/app?lang=de&token=t-_1"
    for bad in ("mos.example.org", "ftp://host/", "https://"):
        with pytest.raises(SrevalError, match="base URL"):
            invite_link(bad, "abc")


def test_admin_password() -> None:
    hashed = hash_password("correct horse", iterations=1000)
    assert re.fullmatch(r"pbkdf2_sha256\$1000\$[0-9a-f]{32}\$[0-9a-f]{64}", hashed)
    assert check_admin_password("correct horse", hashed)
    assert not check_admin_password("correct horsE", hashed)
    assert not check_admin_password("", hashed)
    assert hash_password("correct horse", iterations=1000) != hashed  # a fresh salt every time
    for broken in ("", "correct horse", "pbkdf2_sha256$1000$salt$abc", "md5$1$saltsalt$" + "0" * 64):
        with pytest.raises(SrevalError, match="hash-password"):
            check_admin_password("correct horse", broken)
    with pytest.raises(SrevalError, match="empty"):
        hash_password("")


# --- rating -----------------------------------------------------------------------------------------------


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
    engine = create_engine(url)
    with engine.begin() as conn:  # a path altered in the database must not lead outside the study folder
        conn.execute(text("UPDATE study_stimuli SET path = '../../etc/passwd' WHERE public_id = :p"), {"p": own})
    engine.dispose()
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


# --- simulation, status, export ---------------------------------------------------------------------------


def test_simulation_is_flagged_and_kept_out_of_analyses(store: StudyStore, url: str) -> None:
    ((_, token),) = store.invite(STUDY, 1)  # one real rater, half-way
    store.give_consent(token)
    rate(store, token, 7, score=4)

    result = simulate(store, STUDY, raters=5, workers=2, seed=3)

    assert result.ratings == 5 * PER_RATER == counts(url)["study_ratings"] - 7
    assert [r.rater for r in result.raters] == ["s02", "s03", "s04", "s05", "s06"]
    assert (
        all(r.inconsistency > 0 for r in result.raters) and len(result.true_quality) == N_CALIBRATION + N_TEST + N_GOLD
    )
    full = store.export(STUDY, include_simulated=True)
    assert len(full) == 5 * PER_RATER + 7 and full["simulated"].sum() == 5 * PER_RATER
    assert set(full[full["simulated"]]["rater"]) == {r.rater for r in result.raters}
    real = store.export(STUDY)
    assert len(real) == 7 and set(real["rater"]) == {"r01"} and not real["simulated"].any()
    status = store.status(STUDY)
    assert list(status.raters["rater"]) == ["r01"]
    assert status.methods["done"].sum() == 3  # r01's test-phase ratings only
    everyone = store.status(STUDY, include_simulated=True)
    assert list(everyone.raters["done"]) == [7] + [PER_RATER] * 5
    assert everyone.raters["finished_at"].notna().sum() == 5
    by_method = everyone.methods.set_index("method")
    assert by_method["total"].sum() == 6 * (N_TEST + N_RETEST)
    assert by_method.loc["nn", "mean_score"] < by_method.loc["bicubic", "mean_score"] + 1  # the model's levels
    engine = create_engine(url)
    with engine.connect() as conn:
        flags = conn.execute(text(
            "SELECT r.simulated, COUNT(*) FROM study_ratings g JOIN study_raters r ON r.id = g.rater_id "
            "WHERE g.simulated = r.simulated GROUP BY r.simulated"
        )).all()  # fmt: skip
    engine.dispose()
    assert sorted((bool(f), n) for f, n in flags) == [(False, 7), (True, 5 * PER_RATER)]


def test_status_numbers_and_gold_failures(store: StudyStore) -> None:
    (_, careless), (_, careful), _ = store.invite(STUDY, 3)
    kind = kinds(store)
    for token, wrong in ((careless, True), (careful, False)):
        store.give_consent(token)
        while (item := store.next_item(token)) is not None:
            k = kind[item.stimulus]
            right = 5 if k.endswith("_hr") else 1 if k.endswith("_nn") else 3
            score = {"gold_hr": 2, "gold_nn": 4, "calibration_nn": 2}.get(k, right) if wrong else right
            store.submit(token, item.stimulus, item.repetition, score, 1000)
    status = store.status(STUDY)
    raters = status.raters.set_index("rater")
    assert raters["done"].to_dict() == {"r01": PER_RATER, "r02": PER_RATER, "r03": 0}
    assert raters["total"].to_dict() == {"r01": PER_RATER, "r02": PER_RATER, "r03": PER_RATER}
    assert raters["gold_failures"].to_dict() == {"r01": 2, "r02": 0, "r03": 0}
    assert raters["calibration_misses"].to_dict() == {"r01": 2, "r02": 0, "r03": 0}
    failures = status.gold_failures
    assert sorted(zip(failures["kind"], failures["score"], failures["expected"], strict=True)) == [
        ("gold_hr", 2, 5), ("gold_nn", 4, 1)
    ]  # fmt: skip
    assert set(failures["rater"]) == {"r01"} and "2 or lower" in status.gold_rule
    methods = status.methods.set_index("method")
    assert methods["total"].sum() == 3 * (N_TEST + N_RETEST) and methods["done"].sum() == 2 * (N_TEST + N_RETEST)
    assert methods["mean_score"].tolist() == [3.0, 3.0]
    assert status.info.raters == 3


def test_export_format(store: StudyStore) -> None:
    ((_, token),) = store.invite(STUDY, 1)
    store.give_consent(token)
    rate(store, token, score=4)
    frame = store.export(STUDY)
    assert tuple(frame.columns) == EXPORT_COLUMNS == (
        "rater", "stimulus", "method", "dataset", "image", "repetition", "score", "response_ms", "created_at",
        "kind", "simulated",
    )  # fmt: skip
    assert len(frame) == PER_RATER and set(frame["score"]) == {4} and set(frame["response_ms"]) == {1500}
    assert frame["created_at"].is_monotonic_increasing and str(frame["created_at"].dt.tz) == "UTC"
    assert set(frame["kind"]) == {"test", "gold_hr", "gold_nn", "calibration_hr", "calibration_nn"}
    test = frame[frame["kind"] == "test"]
    assert set(test["method"]) == {"nn", "bicubic"} and set(test["image"]) == set(IMAGES)
    assert set(test["dataset"]) == {"set5"} and sorted(test["repetition"].value_counts()) == [2, 6]
    assert set(frame[frame["kind"] != "test"]["method"]) == {"hr", "nn"}
    assert set(store.export(STUDY, include_gold=False, include_calibration=False)["kind"]) == {"test"}
    assert len(store.export(STUDY, include_calibration=False)) == PER_RATER - N_CALIBRATION


# --- schema -----------------------------------------------------------------------------------------------


def schema(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {
            t: (
                sorted((c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(t)),
                sorted((u["name"] or "", tuple(u["column_names"])) for u in found.get_unique_constraints(t)),
                sorted(
                    (f["name"] or "", tuple(f["constrained_columns"]), f["referred_table"])
                    for f in found.get_foreign_keys(t)
                ),
                sorted(c["name"] for c in found.get_check_constraints(t)),
                sorted((i["name"] or "", tuple(i["column_names"])) for i in found.get_indexes(t)),
                found.get_pk_constraint(t)["constrained_columns"],
            )
            for t in STUDY_TABLES
        }
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/empty.sqlite"
    return str(request.getfixturevalue("pg_database_url"))


def test_version_2_database_is_migrated_to_the_study_schema(empty_url: str, tmp_path: Path) -> None:
    open_store(empty_url).close()
    fresh = schema(empty_url)
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in STUDY_TABLES:
                conn.execute(text(f"DROP TABLE {table.name}"))
        conn.execute(text("UPDATE schema_version SET version = 2"))
    engine.dispose()

    with open_study_store(empty_url) as store:
        assert store.list_studies().empty
    assert schema(empty_url) == fresh
    assert fresh["study_ratings"][3] == ["ck_study_ratings_response_ms", "ck_study_ratings_score"]
    with open_store(empty_url) as results:  # the results store opens the same database
        assert results.list_runs().empty


def test_version_3_database_gains_the_problems_table(empty_url: str) -> None:
    open_store(empty_url).close()
    fresh = schema(empty_url)
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE study_problems"))
        conn.execute(text("UPDATE schema_version SET version = 3"))
    engine.dispose()
    with open_study_store(empty_url) as store:
        assert store.list_studies().empty
    assert schema(empty_url) == fresh and "study_problems" in fresh


def test_open_errors_and_wal(tmp_path: Path) -> None:
    with pytest.raises(SrevalError, match="not in memory"):
        open_study_store("sqlite://")
    with open_study_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
        with pytest.raises(SrevalError, match=r"no study named 'nope'.*holds none"):
            store.status("nope")
        assert store.rater_for_token("whatever") is None


# --- the same core flow on each backend -------------------------------------------------------------------


def test_core_flow(empty_url: str, tmp_path: Path, data_root: Path, sr_cache: Path) -> None:
    with open_study_store(empty_url) as store:
        build(store, tmp_path, data_root, sr_cache)
        ((_, token),) = store.invite(STUDY, 1)
        store.give_consent(token)
        rate(store, token, 3)
        due = store.next_item(token)
        assert due is not None and due.position == 3
        before = snapshot(empty_url)
        for args in ((token, due.stimulus, due.repetition, 6), (token, "forged", 1, 3), ("forged", due.stimulus, 1, 3)):
            with pytest.raises(RequestRefused):
                store.submit(*args)
        assert snapshot(empty_url) == before
        result = simulate(store, STUDY, raters=3, workers=2, seed=1)
        assert result.ratings == 3 * PER_RATER
        assert len(store.export(STUDY)) == 3 and len(store.export(STUDY, include_simulated=True)) == 3 + 3 * PER_RATER
        store.close_study(STUDY)
        with pytest.raises(RequestRefused, match="closed"):
            store.submit(token, due.stimulus, due.repetition, 3)
        assert counts(empty_url)["study_ratings"] == 3 + 3 * PER_RATER


# --- CLI --------------------------------------------------------------------------------------------------


def test_cli(
    tmp_path: Path, data_root: Path, sr_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    training = data_root.parent / "training"
    if not (training / "T91").is_dir():
        pytest.skip(f"T91 not at {training / 'T91'}")
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(training))
    monkeypatch.setenv("SREVAL_DATA_ROOT", str(data_root))
    monkeypatch.setenv("SREVAL_CACHE", str(sr_cache))
    monkeypatch.setenv("SREVAL_STUDIES", str(tmp_path / "studies"))
    db = ["--db", f"sqlite:///{tmp_path / 'study.sqlite'}"]
    study = ["--study", "cli"]

    create = ["study", "create", "--name", "cli", "--methods", "bicubic,hr", "--datasets", "set5", "--images"]
    assert (
        main([*create, "bird,head", "--gold-images", "1", "--calibration-images", "2", "--seed", "4", "-q", *db]) == 0
    )
    out = capsys.readouterr().out
    assert "created study cli: 4 test items (2 methods: bicubic, hr), 2 gold items, 4 calibration items" in out
    assert len(list((tmp_path / "studies" / "cli").glob("*.png"))) == 10

    assert main(["study", "invite", *study, "--n", "3", "--base-url", "https://mos.example.org/", *db]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["r01", "r02", "r03"] and "shown only this once" in captured.err
    tokens = [re.fullmatch(r"r0\d\thttps://mos\.example\.org/\?token=([A-Za-z0-9_-]{43})", line)[1] for line in lines]  # type: ignore[index]
    with open_study_store(db[1]) as store:
        store.give_consent(tokens[0])
        rate(store, tokens[0], 5)

    assert main(["study", "simulate", *study, "--raters", "2", "--workers", "2", "--seed", "1", *db]) == 0
    assert "simulated raters s04..s05 (2, seed 1)" in capsys.readouterr().out

    assert main(["study", "status", *study, *db]) == 0
    out = capsys.readouterr().out
    assert "study cli: open; 3 raters" in out and "bicubic" in out and "gold failures:" in out and "s04" not in out
    assert main(["study", "status", *study, "--include-simulated", *db]) == 0
    assert "s04" in capsys.readouterr().out

    assert main(["study", "export", *study, "--out", str(tmp_path / "ratings.csv"), *db]) == 0
    assert "wrote 5 ratings of 1 raters" in capsys.readouterr().out
    ratings = pd.read_csv(tmp_path / "ratings.csv")
    assert tuple(ratings.columns) == EXPORT_COLUMNS and len(ratings) == 5 and set(ratings["rater"]) == {"r01"}
    everything = ["--out", str(tmp_path / "all.csv"), "--include-simulated", "--no-calibration"]
    assert main(["study", "export", *study, *everything, *db]) == 0
    assert len(pd.read_csv(tmp_path / "all.csv")) == 1 + 2 * (4 + 2 + 1)

    assert main(["study", "list", *db]) == 0
    assert re.search(r"cli .* 5 +2 +\d+", capsys.readouterr().out)
    assert main(["study", "close", *study, *db]) == 0
    assert "closed at" in capsys.readouterr().out
    assert main(["study", "simulate", *study, "--raters", "1", *db]) == 2
    assert "closed" in capsys.readouterr().err
    assert main(["study", "invite", "--study", "nope", "--n", "1", "--base-url", "https://x.org/", *db]) == 2
    assert "no study named 'nope'" in capsys.readouterr().err
    assert main(["study", "invite", *study, "--n", "1", "--base-url", "x.org", *db]) == 2
    assert "base URL" in capsys.readouterr().err

    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret pass\n"))
    assert main(["study", "hash-password", "--iterations", "1000", "--force"]) == 0
    captured = capsys.readouterr()
    assert check_admin_password("s3cret pass", captured.out.strip()) and "secrets.toml" in captured.err

"""MOS studies: building (opaque files, reproducible orders), invitations and links, the admin password,
on a real SQLite file (see study_helpers for the study). The rater API: test_study_rating.py; status and export:
test_study_status.py; schema and opening: test_study_schema.py; the CLI: test_study_cli.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from study_helpers import IMAGES, N_CALIBRATION, N_GOLD, N_RETEST, N_TEST, PER_RATER, SEED, STUDY, build, counts

from sreval.datasets.registry import get_dataset, load_hr
from sreval.errors import SrevalError
from sreval.imageio import load_image
from sreval.study import (
    Item,
    StudyStore,
    check_admin_password,
    hash_password,
    invite_link,
    open_study_store,
)
from sreval.study.builder import build_study
from sreval.study.schedule import build_schedule, rater_seed, retest_count
from sreval.study.security import token_sha256


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
            build_study(store, "x", [f"folder:{tmp_path}"], ["set5"], data_root=data_root, calibration_images=0)
        with pytest.raises(SrevalError, match="holds only 3"):
            build_study(store, "x", ["nn"], ["set5"], data_root=data_root, calibration_images=4,
                        calibration_dir=tmp_path / "calibration", folder=tmp_path / "x")  # fmt: skip
        with pytest.raises(SrevalError, match="not allowed"):
            build_study(store, "../evil", ["nn"], ["set5"], data_root=data_root)
    assert set(counts(url).values()) == {0}


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

"""A `sreval study create` that fails or is killed (kill -9) leaves nothing that blocks running the same command
again, and removes only what such a create of the same study left."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sreval.errors import SrevalError
from sreval.imageio import save_png
from sreval.study import StudyStore, open_study_store
from sreval.study import folder as folder_module
from sreval.study.builder import build_study
from tests.study_folder_helpers import DATASETS, METHODS, N_GOLD, N_TEST, build, entries, modes, noise_images

ROOT = Path(__file__).resolve().parents[1]


# --- interrupted and failed creates -----------------------------------------------------------------------


def test_database_row_is_written_only_after_the_folder_is_complete(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, set[int], int, list[str]]] = []
    original = StudyStore.create_study

    def checking_create_study(self: StudyStore, draft: Any) -> Any:
        folder = Path(draft.folder)
        files = list(folder.glob("*.png"))  # and the marker that a killed create left this folder unfinished
        assert {f.name for f in files} == {s.path for s in draft.stimuli}
        seen.append((*modes(folder), len({f.stat().st_mtime_ns for f in files}), entries(tmp_path)))
        return original(self, draft)

    monkeypatch.setattr(StudyStore, "create_study", checking_create_study)
    with open_study_store(f"sqlite:///{tmp_path / 'study.sqlite'}") as store:
        build(store, tmp_path, data_root)
        assert sorted(os.listdir(tmp_path / "blind")) == sorted(Path(p).name for p in store.stimuli("blind")["path"])
    assert seen == [(0o700, {0o600}, 1, ["blind", "calibration"])]


def test_failed_database_step_removes_the_folder_and_a_rerun_works(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_study_store(f"sqlite:///{tmp_path / 'study.sqlite'}") as store:
        monkeypatch.setattr(StudyStore, "create_study", lambda self, draft: (_ for _ in ()).throw(SrevalError("boom")))
        with pytest.raises(SrevalError, match="boom"):
            build(store, tmp_path, data_root)
        assert entries(tmp_path) == ["calibration"]
        monkeypatch.undo()
        build(store, tmp_path, data_root)
        assert len(store.stimuli("blind")) == N_TEST + N_GOLD + 4


def create_command(root: Path, name: str) -> tuple[list[str], dict[str, str]]:
    """`sreval study create` of a study big enough to be killed while it renders (about 110 stimuli)."""
    calibration = root / "calibration"
    if not calibration.is_dir():
        noise_images(calibration, 20, size=96)
    command = [
        sys.executable, "-m", "sreval", "study", "create", "--name", name, "--methods", ",".join(METHODS),
        "--datasets", ",".join(DATASETS), "--calibration-dir", str(calibration), "--calibration-images", "20",
        "--seed", "7",
        "--no-cache", "-q",
    ]  # fmt: skip
    env = {
        **os.environ,
        "SREVAL_DB": f"sqlite:///{root / 'study.sqlite'}",
        "SREVAL_STUDIES": str(root / "studies"),
        "PYTHONPATH": str(ROOT),
    }
    return command, env


def png_count(folder: Path) -> int:
    """PNG files anywhere under `folder`, in hidden folders too."""
    return sum(name.endswith(".png") for _, _, names in os.walk(folder) for name in names)


def assert_complete(root: Path, name: str) -> None:
    with open_study_store(f"sqlite:///{root / 'study.sqlite'}") as store:
        stimuli = store.stimuli(name)
        info = store.study(name)
    assert info.folder == (root / "studies" / name).resolve()
    assert (stimuli["kind"] == "test").sum() == N_TEST and len(stimuli) == N_TEST + N_GOLD + 40
    assert sorted(os.listdir(info.folder)) == sorted(Path(p).name for p in stimuli["path"])
    assert os.listdir(root / "studies") == [name], "leftovers beside the study folder"
    assert modes(info.folder) == (0o700, {0o600})


def test_kill_during_render_does_not_block_a_rerun(tmp_path: Path, data_root: Path) -> None:
    command, env = create_command(tmp_path, "killed")
    env["SREVAL_DATA_ROOT"] = str(data_root)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while png_count(tmp_path / "studies") < 3:
            if process.poll() is not None:
                pytest.fail(f"create ended (rc {process.returncode}) before it could be killed: {process.stderr}")
            if time.monotonic() > deadline:
                pytest.fail("create wrote no stimulus within 120 s")
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    left = png_count(tmp_path / "studies")
    assert 3 <= left < N_TEST + N_GOLD + 40, f"{left} files: the create was not killed mid-render"

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"created study killed: {N_TEST} test items" in rerun.stdout
    assert_complete(tmp_path, "killed")


def test_kill_after_rendering_before_the_database_row_does_not_block_a_rerun(tmp_path: Path, data_root: Path) -> None:
    command, env = create_command(tmp_path, "late")
    env["SREVAL_DATA_ROOT"] = str(data_root)
    # The process dies at the moment it would store the study: no clean-up code runs, as with kill -9.
    dies = (
        "import os, sys\n"
        "from sreval.study import StudyStore\n"
        "StudyStore.create_study = lambda self, draft: os._exit(9)\n"
        "from sreval.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    killed = subprocess.run([sys.executable, "-c", dies, *command[3:]], env=env, capture_output=True, text=True,
                            timeout=300, check=False)  # fmt: skip
    assert killed.returncode == 9, killed.stderr
    assert png_count(tmp_path / "studies") == N_TEST + N_GOLD + 40

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert_complete(tmp_path, "late")


# --- what a create may and may not remove ------------------------------------------------------------------


def test_folders_a_create_must_not_remove(tmp_path: Path, data_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    foreign = tmp_path / "blind"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with open_study_store(url) as store:
        with pytest.raises(SrevalError, match="already exists and is not empty"):
            build(store, tmp_path, data_root)
        assert os.listdir(foreign) == ["notes.txt"]
        # Unfinished, but by a create of another study or database: left alone, and the message says whose.
        for marker in (
            {"study": "blind", "database": "sqlite:///elsewhere.sqlite"},
            {"study": "other", "database": url},
        ):
            (foreign / folder_module.UNFINISHED_MARKER).write_text(json.dumps(marker))
            with pytest.raises(SrevalError, match=r"is an unfinished study .* not one of study 'blind'"):
                build(store, tmp_path, data_root)
            assert (foreign / "notes.txt").exists()
    assert entries(tmp_path) == ["blind", "calibration"]


def test_folders_of_a_running_create_stay(tmp_path: Path, data_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    running, stale = tmp_path / ".blind.partial-running", tmp_path / ".blind.partial-stale"
    other = tmp_path / ".blinder.partial-stale"  # another study's: not this create's business
    rendered = tmp_path / "late"  # renamed into place, not yet stored
    for folder in (running, stale, other, rendered):
        folder.mkdir()
        (folder / "x.png").write_bytes(b"")
    (rendered / folder_module.UNFINISHED_MARKER).write_text(json.dumps({"study": "late", "database": url}))
    # as creates still running hold them
    locks = [folder_module.lock_folder(running), folder_module.lock_folder(rendered)]
    try:
        with open_study_store(url) as store:
            build(store, tmp_path, data_root)
            with pytest.raises(SrevalError, match="late is being created by another process"):
                build(store, tmp_path, data_root, name="late")
        assert entries(tmp_path) == [".blind.partial-running", ".blinder.partial-stale", "blind", "calibration", "late"]
        assert (rendered / "x.png").exists()
    finally:
        for lock in locks:
            if lock is not None:
                os.close(lock)


def test_an_empty_dir_is_replaced_and_comes_back_after_a_failure(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "blind").mkdir()
    with open_study_store(f"sqlite:///{tmp_path / 'study.sqlite'}") as store:
        monkeypatch.setattr(StudyStore, "create_study", lambda self, draft: (_ for _ in ()).throw(SrevalError("boom")))
        with pytest.raises(SrevalError, match="boom"):
            build(store, tmp_path, data_root)
        assert entries(tmp_path) == ["blind", "calibration"] and os.listdir(tmp_path / "blind") == []
        monkeypatch.undo()
        build(store, tmp_path, data_root)
        assert len(os.listdir(tmp_path / "blind")) == N_TEST + N_GOLD + 4
        assert modes(tmp_path / "blind") == (0o700, {0o600})


def test_bad_calibration_images_fail_and_leave_nothing(tmp_path: Path, data_root: Path) -> None:
    calibration = tmp_path / "calibration"
    save_png(calibration / "a.png", np.zeros((3, 64, 3), np.uint8))
    with open_study_store(f"sqlite:///{tmp_path / 'study.sqlite'}") as store:
        kwargs: dict[str, Any] = {"data_root": data_root, "calibration_dir": calibration, "folder": tmp_path / "s"}
        with pytest.raises(SrevalError, match=r"a\.png is smaller than 4x4 pixels"):
            build_study(store, "s", ["nn"], ["set5"], images=["bird"], gold_images=0, calibration_images=1, **kwargs)
        (calibration / "a.png").unlink()
        shutil.copy(data_root / "Set5" / "HR" / "img_002_SRF_4_HR.png", calibration / "b.png")  # bird, 288x288
        with pytest.raises(SrevalError, match=r"b\.png is one of the test images"):
            build_study(
                store, "s", ["nn", "hr"], ["set5"], images=["bird"], gold_images=1, calibration_images=1, **kwargs
            )
        assert entries(tmp_path) == ["calibration"]
        assert store.list_studies().empty

"""The study folder that `sreval study create` leaves: nothing in it tells which method made which file, it is
private unless asked otherwise, and an interrupted create (kill -9) never blocks running the same command again.

What a person with read access to the folder (but not the database) could use to unblind the study: file names
(random ids), modification, change and access times, inode numbers (creation order) and the directory listing
order. File contents and sizes are the stimuli themselves, so they cannot be hidden.

The order statistics: Spearman correlations with the position of the file's method in `--methods`, over all test
items ("global") and within each source image ("within image", pooled: ranks of an image's files against their
methods' ranks), the second being what matters when the files of one image can be told apart by their content;
and the number of images whose files show the methods in the order most images share (any fixed mapping from
position to method, reversed or shifted, shows there). Under a uniformly random order of one image's k items, the
within-image correlation of that image has mean 0 and variance 1/(k - 1); pooled over m images its standard
deviation is sqrt(1 / (m (k - 1))): 0.16 for this module's study (19 images x 3 methods); the global one has
1/sqrt(n - 1) = 0.13 for n = 57 test items; and each image's order is one of 3! = 6, equally likely. An order that
follows `--methods` gives 1, 1 and 19 of 19 images (the old builder, for modification and change times).

The rendering order is drawn from a fixed seed in these tests (the builder's random source is replaced), so its
figures are the same in every run (0.148, 0.132, 5 of 19) and the bounds 0.5 (about 3 standard deviations) and
10 images cannot make the test flaky. Inode numbers, change times and the listing order also depend on the file
system (reused inodes, coarse clock ticks, hashes of the random file names), so they are a new draw in each run;
their bounds are 0.8, which a random order reaches with probability 3.6e-8 within image (exact, convolving the 19
per-image distributions) and about 2e-9 globally (normal approximation), and 14 images in one order, probability
at most 6 P(Binomial(19, 1/6) >= 14) = 3.8e-7.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sreval.cli import main
from sreval.errors import SrevalError
from sreval.imageio import save_png
from sreval.study import StudyStore, open_study_store
from sreval.study import builder as builder_module
from sreval.study.builder import build_study

METHODS = ["nn", "bicubic", "hr"]
DATASETS = "set5,set14"
#: 19 images x 3 methods; 5 gold images x (HR, NN); calibration images x (HR, NN).
N_TEST, N_GOLD = 57, 10
#: Bounds on an order that must not follow the methods (see the module docstring): |Spearman rho| below the first,
#: fewer images than the second in one method order. For the seeded rendering order, and for orders that the file
#: system adds its own randomness to.
BOUNDS = (0.5, 10)
BOUNDS_FS = (0.8, 14)
ORDER_SEED = 20240611
ROOT = Path(__file__).resolve().parents[1]


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho (average ranks for ties); NaN when either side is constant (no order to follow)."""
    rx, ry = pd.Series(x, dtype=float).rank(), pd.Series(y, dtype=float).rank()
    if rx.nunique() < 2 or ry.nunique() < 2:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass(frozen=True)
class Leak:
    """How well an order over the stimulus files tells the test items' methods apart."""

    global_rho: float
    within_image_rho: float
    #: Test items whose method an observer gets right by taking the k-th file of an image as the k-th method.
    guessed: int
    total: int
    #: Images whose files, in this order, show the methods in the order most images share (any fixed mapping from
    #: position to method, reversed or shifted too, shows up here).
    same_order: int
    images: int

    def __str__(self) -> str:
        return (
            f"rho {self.global_rho:.3f} overall, {self.within_image_rho:.3f} within image; "
            f"{self.guessed}/{self.total} methods guessed; {self.same_order}/{self.images} images in one order"
        )

    def follows_methods(self, bounds: tuple[float, int]) -> bool:
        """True if a statistic reaches its bound (NaN, from an order where all are equal, never does)."""
        rho_bound, same_order_bound = bounds
        return (
            abs(self.global_rho) >= rho_bound
            or abs(self.within_image_rho) >= rho_bound
            or self.same_order >= same_order_bound
        )


def leak(stimuli: pd.DataFrame, key: dict[str, float]) -> Leak:
    """`key`: file name -> its value in some order (mtime, inode, listing position, rendering position)."""
    tests = stimuli[stimuli["kind"] == "test"].copy()
    tests["key"] = [key[Path(p).name] for p in tests["path"]]
    tests["method_rank"] = [METHODS.index(m) + 1 for m in tests["method"]]
    tests["rank_in_image"] = tests.groupby(["dataset", "image"])["key"].rank()
    tests["name"] = [Path(p).name for p in tests["path"]]  # breaks ties (equal times) at random, names being random
    orders = tests.sort_values(["key", "name"]).groupby(["dataset", "image"])["method"].agg(tuple)
    return Leak(
        spearman(list(tests["key"]), list(tests["method_rank"])),
        spearman(list(tests["rank_in_image"]), list(tests["method_rank"])),
        int((tests["rank_in_image"] == tests["method_rank"]).sum()),
        len(tests),
        int(orders.value_counts().max()),
        len(orders),
    )


def noise_images(folder: Path, n: int, size: int = 64) -> Path:
    """Calibration images outside the test set: seeded noise (slow to compress, so rendering takes a while)."""
    rng = np.random.default_rng(5)
    for i in range(n):
        save_png(folder / f"cal{i:02d}.png", rng.integers(0, 256, (size, size + 4 * i, 3), dtype=np.uint8))
    return folder


def build(store: StudyStore, root: Path, data_root: Path, name: str = "blind", **kwargs: Any) -> None:
    build_study(
        store, name, ",".join(METHODS), DATASETS, data_root=data_root, retest=0.1, gold_images=5,
        calibration_images=2, calibration_dir=noise_images(root / "calibration", 2), folder=root / name, seed=3,
        **kwargs,
    )  # fmt: skip


@dataclass(frozen=True)
class Built:
    folder: Path
    stimuli: pd.DataFrame
    rendered: list[str]  # file names in the order the builder wrote them


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Built:
    """The study of this module, rendered with a seeded order and every PNG write recorded."""
    root = tmp_path_factory.mktemp("blind")
    rendered: list[str] = []

    def recording_save_png(path: str | os.PathLike[str], pixels: np.ndarray, **kwargs: Any) -> None:
        rendered.append(Path(path).name)
        save_png(path, pixels, **kwargs)

    with pytest.MonkeyPatch.context() as patch, open_study_store(f"sqlite:///{root / 'study.sqlite'}") as store:
        patch.setattr(builder_module, "save_png", recording_save_png)
        patch.setattr(builder_module, "_order_rng", lambda: random.Random(ORDER_SEED), raising=False)
        build(store, root, data_root)
        stimuli = store.stimuli("blind")
    return Built(root / "blind", stimuli, rendered)


# --- nothing in the folder follows the methods -------------------------------------------------------------


def test_all_stimulus_files_share_one_mtime_and_atime(built: Built) -> None:
    stats = {f.name: f.stat() for f in built.folder.iterdir()}
    mtime_leak = leak(built.stimuli, {n: s.st_mtime_ns for n, s in stats.items()})
    assert len({s.st_mtime_ns for s in stats.values()}) == 1, f"mtimes differ: {mtime_leak}"
    assert len({s.st_atime_ns for s in stats.values()}) == 1, "atimes differ"
    assert np.isnan(mtime_leak.within_image_rho) and np.isnan(mtime_leak.global_rho)


def test_rendering_order_is_random(built: Built) -> None:
    assert sorted(built.rendered) == sorted(Path(p).name for p in built.stimuli["path"])
    order = leak(built.stimuli, {name: i for i, name in enumerate(built.rendered)})
    assert not order.follows_methods(BOUNDS), str(order)


def test_the_production_order_comes_from_a_fresh_random_source() -> None:
    # Not from the study's seed: the seed is printed and stored, and with it anyone could redo a seeded order.
    assert isinstance(builder_module._order_rng(), random.SystemRandom)


@pytest.mark.parametrize("what", ["inode", "ctime", "listing"])
def test_inodes_ctimes_and_listing_do_not_follow_the_methods(built: Built, what: str) -> None:
    if what == "listing":
        key = {name: float(i) for i, name in enumerate(os.listdir(built.folder))}
    else:
        stats = {f.name: f.stat() for f in built.folder.iterdir()}
        key = {n: float(s.st_ino if what == "inode" else s.st_ctime_ns) for n, s in stats.items()}
    order = leak(built.stimuli, key)
    # NaN (every value equal) is no order at all.
    assert not order.follows_methods(BOUNDS_FS), str(order)


def test_file_names_are_random_ids(built: Built) -> None:
    names = sorted(f.name for f in built.folder.iterdir())
    assert names == sorted(Path(p).name for p in built.stimuli["path"])
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}\.png", n) for n in names), names
    assert len(built.stimuli) == N_TEST + N_GOLD + 4


# --- permissions -------------------------------------------------------------------------------------------


def modes(folder: Path) -> tuple[int, set[int]]:
    return stat.S_IMODE(folder.stat().st_mode), {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()}


def test_study_folder_is_private_by_default(built: Built) -> None:
    assert modes(built.folder) == (0o700, {0o600})


def test_group_read_option(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SREVAL_DATA_ROOT", str(data_root))
    args = ["study", "create", "--methods", "nn", "--datasets", "set5", "--images", "bird,head", "--gold-images", "1",
            "--calibration-images", "1", "--calibration-dir", str(noise_images(tmp_path / "cal", 1)), "--no-cache",
            "-q", "--db", f"sqlite:///{tmp_path / 'study.sqlite'}"]  # fmt: skip
    assert main([*args, "--name", "shared", "--dir", str(tmp_path / "shared"), "--group-read"]) == 0
    assert modes(tmp_path / "shared") == (0o750, {0o640})
    assert main([*args, "--name", "private", "--dir", str(tmp_path / "private")]) == 0
    assert modes(tmp_path / "private") == (0o700, {0o600})
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["study", "create", "--help"])
    assert "--group-read" in capsys.readouterr().out


# --- interrupted and failed creates -----------------------------------------------------------------------


def entries(folder: Path) -> list[str]:
    """What `folder` holds besides the SQLite database files."""
    return sorted(n for n in os.listdir(folder) if not n.startswith("study.sqlite"))


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
        "--datasets", DATASETS, "--calibration-dir", str(calibration), "--calibration-images", "20", "--seed", "7",
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
            (foreign / builder_module.UNFINISHED_MARKER).write_text(json.dumps(marker))
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
    (rendered / builder_module.UNFINISHED_MARKER).write_text(json.dumps({"study": "late", "database": url}))
    locks = [builder_module._lock(running), builder_module._lock(rendered)]  # as creates still running hold them
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
            build_study(store, "s", "nn", "set5", images=["bird"], gold_images=0, calibration_images=1, **kwargs)
        (calibration / "a.png").unlink()
        shutil.copy(data_root / "Set5" / "HR" / "img_002_SRF_4_HR.png", calibration / "b.png")  # bird, 288x288
        with pytest.raises(SrevalError, match=r"b\.png is one of the test images"):
            build_study(store, "s", "nn,hr", "set5", images=["bird"], gold_images=1, calibration_images=1, **kwargs)
        assert entries(tmp_path) == ["calibration"]
        assert store.list_studies().empty

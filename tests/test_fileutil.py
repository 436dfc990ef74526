"""`atomic_open`: a reader never sees half a file, a failed write leaves none, and what it writes gets the mode a
plain `open(path, "w")` would give: 0666 less the umask for a new file (so an organiser with umask 077 gets
private ratings and analyses), the file's own mode when it replaces one. Checked directly and end to end for
`sreval study export --out` and `sreval analyze --out`, under umask 077 and 022.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sreval.cli import main
from sreval.fileutil import atomic_open
from sreval.imageio import save_png
from sreval.study import open_study_store
from sreval.study.builder import build_study
from sreval.study.simulate import simulate


@pytest.fixture(params=[0o077, 0o022], ids=["umask077", "umask022"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask for the test (restored afterwards)."""
    mask: int = request.param
    old = os.umask(mask)
    try:
        yield mask
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("open_mode", "data"), [("w", "text"), ("wb", b"bytes"), ("wt", "text"), ("w+", "text")])
def test_new_file_gets_the_mode_open_gives(tmp_path: Path, umask: int, open_mode: str, data: str | bytes) -> None:
    with atomic_open(tmp_path / "atomic", open_mode) as f:
        f.write(data)
    with open(tmp_path / "plain", open_mode) as f:
        f.write(data)
    assert mode(tmp_path / "atomic") == mode(tmp_path / "plain") == 0o666 & ~umask
    assert (tmp_path / "atomic").read_bytes() == (tmp_path / "plain").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["atomic", "plain"]


def test_replaced_file_keeps_its_mode(tmp_path: Path, umask: int) -> None:
    for kept in (0o600, 0o640, 0o644):
        path = tmp_path / f"{kept:o}.csv"
        path.write_text("old")
        os.chmod(path, kept)
        with atomic_open(path, newline="") as f:
            f.write("new")
        assert (path.read_text(), mode(path)) == ("new", kept)


def test_failure_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("old")
    for target in (path, tmp_path / "new.csv"):
        with pytest.raises(RuntimeError), atomic_open(target) as f:
            f.write("half")
            raise RuntimeError
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.csv"]


@pytest.mark.parametrize("open_mode", ["r", "a", "r+", "x", "ww", "w\x00"])
def test_modes_that_do_not_write_a_whole_file_are_refused(tmp_path: Path, open_mode: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text("old")
    expected = rf"mode {re.escape(repr(open_mode))} is not one of 'w', 'wb'"
    with pytest.raises(ValueError, match=expected), atomic_open(path, open_mode) as f:
        f.write("new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.csv"]


# --- end to end --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study_db(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> str:
    """A small study with simulated ratings."""
    root = tmp_path_factory.mktemp("umask-study")
    url = f"sqlite:///{root / 'study.sqlite'}"
    save_png(root / "calibration" / "cal.png", np.random.default_rng(1).integers(0, 256, (32, 32, 3), np.uint8))
    with open_study_store(url) as store:
        build_study(
            store, "u", ["nn", "bicubic", "hr"], ["set5"], data_root=data_root, gold_images=1, calibration_images=1,
            calibration_dir=root / "calibration", folder=root / "stimuli", seed=1,
        )  # fmt: skip
        simulate(store, "u", raters=4, workers=1, seed=2)
    return url


def test_study_export_and_analyze_follow_the_umask(
    tmp_path: Path, study_db: str, umask: int, capsys: pytest.CaptureFixture[str]
) -> None:
    ratings = tmp_path / "ratings.csv"
    assert (
        main(["study", "export", "--study", "u", "--include-simulated", "--out", str(ratings), "--db", study_db]) == 0
    )
    assert mode(ratings) == 0o666 & ~umask
    out = tmp_path / "results"
    assert main(["analyze", "--ratings", str(ratings), "--include-simulated", "--out", str(out)]) == 0, (
        capsys.readouterr()
    )
    written = sorted(out.iterdir())
    assert written and {p.suffix for p in written} == {".csv"}
    assert {mode(p) for p in written} == {0o666 & ~umask}
    assert mode(out) == 0o777 & ~umask

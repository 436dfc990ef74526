"""The study folder that `sreval study create` leaves: nothing in it tells which method made which file, it is
private unless asked otherwise (interrupted and failed creates: `test_study_create_failures`).

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

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sreval.cli import main
from sreval.imageio import save_png
from sreval.study import builder as builder_module
from sreval.study import open_study_store
from tests.study_folder_helpers import METHODS, N_GOLD, N_TEST, build, modes, noise_images

#: Bounds on an order that must not follow the methods (see the module docstring): |Spearman rho| below the first,
#: fewer images than the second in one method order. For the seeded rendering order, and for orders that the file
#: system adds its own randomness to.
BOUNDS = (0.5, 10)
BOUNDS_FS = (0.8, 14)
ORDER_SEED = 20240611


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

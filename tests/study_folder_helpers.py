"""Helpers of the study folder tests: a small study of every kind of stimulus, rendered by `build_study`."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

from sreval.imageio import save_png
from sreval.study import StudyStore
from sreval.study.builder import build_study

METHODS = ["nn", "bicubic", "hr"]
DATASETS = ["set5", "set14"]
#: 19 images x 3 methods; 5 gold images x (HR, NN); calibration images x (HR, NN).
N_TEST, N_GOLD = 57, 10


def noise_images(folder: Path, n: int, size: int = 64) -> Path:
    """Calibration images outside the test set: seeded noise (slow to compress, so rendering takes a while)."""
    rng = np.random.default_rng(5)
    for i in range(n):
        save_png(folder / f"cal{i:02d}.png", rng.integers(0, 256, (size, size + 4 * i, 3), dtype=np.uint8))
    return folder


def build(store: StudyStore, root: Path, data_root: Path, name: str = "blind", **kwargs: Any) -> None:
    build_study(
        store, name, METHODS, DATASETS, data_root=data_root, retest=0.1, gold_images=5,
        calibration_images=2, calibration_dir=noise_images(root / "calibration", 2), folder=root / name, seed=3,
        **kwargs,
    )  # fmt: skip


def modes(folder: Path) -> tuple[int, set[int]]:
    return stat.S_IMODE(folder.stat().st_mode), {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()}


def entries(folder: Path) -> list[str]:
    """What `folder` holds besides the SQLite database files."""
    return sorted(n for n in os.listdir(folder) if not n.startswith("study.sqlite"))

"""What the MOS study tests share: one small study (Set5 bird/butterfly/head × nn, bicubic; 1 gold image;
2 calibration images; 2 retest items), rendered once per test module (the `template`, `url` and `store` fixtures
of conftest.py); tests that write get their own copy of its database. Helpers answer items and snapshot what
a refused request must leave as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from db_helpers import count_rows, query_rows

from sreval.benchmark.cache import Cache
from sreval.db.tables import Base
from sreval.imageio import save_png
from sreval.study import Item, StudyStore
from sreval.study.builder import build_study

STUDY = "pilot"


IMAGES = ["bird", "butterfly", "head"]


SEED = 11


#: Per rater: 2 calibration images x (HR, NN), 3 images x 2 methods, 1 gold image x (HR, NN), 2 retest items.
N_CALIBRATION, N_TEST, N_GOLD, N_RETEST = 4, 6, 2, 2


PER_RATER = N_CALIBRATION + N_TEST + N_GOLD + N_RETEST


STUDY_TABLES = [t for t in Base.metadata.tables if t == "studies" or t.startswith("study_")]


#: Every stored rating and every rater's row: what a refused request must leave as it was.
RATING_STATE = ("SELECT * FROM study_ratings ORDER BY id", "SELECT * FROM study_raters ORDER BY id")


def make_calibration_folder(folder: Path, n: int = 3) -> Path:
    """Images outside the test set: seeded noise."""
    rng = np.random.default_rng(5)
    for i in range(n):
        save_png(folder / f"cal{i}.png", rng.integers(0, 256, (48 + 4 * i, 64, 3), dtype=np.uint8))
    return folder


def build(store: StudyStore, root: Path, data_root: Path, cache: Path, name: str = STUDY) -> None:
    build_study(
        store, name, ["nn", "bicubic"], ["set5"], data_root=data_root, images=IMAGES, retest=0.34, gold_images=1,
        calibration_images=2, calibration_dir=make_calibration_folder(root / "calibration"),
        folder=root / "stimuli", seed=SEED, cache=Cache(cache),
    )  # fmt: skip


def counts(url: str) -> dict[str, int]:
    return count_rows(url, STUDY_TABLES)


def snapshot(url: str) -> tuple[dict[str, int], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Everything a refused request must leave as it was: row counts, every rating, every rater's state."""
    ratings, raters, closed = query_rows(url, *RATING_STATE, "SELECT id, closed_at FROM studies ORDER BY id")
    return counts(url), ratings, raters + closed


def rate(store: StudyStore, token: str, n: int | None = None, score: int = 3) -> list[Item]:
    """Answer the next `n` items (all when None) with `score`; return the items answered."""
    answered: list[Item] = []
    while (n is None or len(answered) < n) and (item := store.next_item(token)) is not None:
        store.submit(token, item.stimulus, item.repetition, score, 1500)
        answered.append(item)
    return answered


def kinds(store: StudyStore) -> dict[str, str]:
    return dict(zip(store.stimuli(STUDY)["public_id"], store.stimuli(STUDY)["kind"], strict=True))

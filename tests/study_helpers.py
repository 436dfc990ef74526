"""What the MOS study tests share: one small study (Set5 bird/butterfly/head × nn, bicubic; 1 gold image;
2 calibration images; 2 retest items), rendered once per test module; tests that write get their own copy of its
database. Helpers answer items and snapshot what a refused request must leave as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from sreval.benchmark.cache import Cache
from sreval.db.tables import Base
from sreval.imageio import save_png
from sreval.study import (
    Item,
    StudyStore,
    open_study_store,
)
from sreval.study.builder import build_study

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
        store, name, ["nn", "bicubic"], ["set5"], data_root=data_root, images=IMAGES, retest=0.34, gold_images=1,
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

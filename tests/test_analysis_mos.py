"""MOS with confidence intervals (`mos`) and average ranks (`ranks`), worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from analysis_helpers import synthetic_study

from sreval.analysis import validate_ratings
from sreval.analysis.mos import mos_table, t_interval
from sreval.analysis.ranks import rank_table


def test_t_interval_by_hand() -> None:
    low, high = t_interval(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4) · S / √N, S² = 2.5
    assert (low, high) == pytest.approx((3 - half, 3 + half), abs=1e-12)
    assert all(math.isnan(v) for v in t_interval(np.array([3.0])))

def test_mos_table_and_bootstrap_over_raters_and_images() -> None:
    ratings = synthetic_study(raters=10, images=8)
    table = mos_table(ratings)
    assert list(table.columns) == ["method", "dataset", "mos", "ci_low", "ci_high", "n_ratings", "n_raters"]
    hr = table[(table["method"] == "hr") & (table["dataset"] == "set5")].iloc[0]
    scores = ratings.query("method == 'hr' and dataset == 'set5'")["score"].to_numpy()
    assert hr["mos"] == pytest.approx(scores.mean()) and hr["n_ratings"] == scores.size and hr["n_raters"] == 10
    assert (hr["ci_low"], hr["ci_high"]) == pytest.approx(t_interval(scores))
    assert list(table[table["dataset"] == "set5"]["method"]) == ["hr", "srgan", "bicubic", "nn"]

    boot = mos_table(ratings, ci="bootstrap", n_boot=400, seed=3)
    assert boot[["ci_low", "ci_high"]].equals(
        mos_table(ratings, ci="bootstrap", n_boot=400, seed=3)[["ci_low", "ci_high"]]
    )
    assert ((boot["ci_low"] <= boot["mos"]) & (boot["mos"] <= boot["ci_high"])).all()
    # Large rater biases: the ratings are far from independent, and only the bootstrap over raters sees it.
    biased = ratings.copy()
    biased["score"] += biased["rater"].map({f"r{i:02d}": (-1.5 if i % 2 else 1.5) for i in range(10)})
    t_width = mos_table(biased).eval("ci_high - ci_low")
    boot_width = mos_table(biased, ci="bootstrap", n_boot=400).eval("ci_high - ci_low")
    assert (boot_width > t_width).mean() >= 0.75

def test_average_ranks_by_hand() -> None:
    rows = [("r1", "x", "a", 5), ("r1", "x", "b", 3), ("r1", "x", "c", 3), ("r2", "x", "a", 2), ("r2", "x", "b", 4),
            ("r2", "x", "c", 1), ("r3", "x", "a", 4)]  # fmt: skip  # r3 did not score b, c: not a complete block
    frame = pd.DataFrame(rows, columns=["rater", "image", "method", "score"]).assign(dataset="d")
    ranks = rank_table(validate_ratings(frame)).set_index("method")
    # r1: a 1, b 2.5, c 2.5; r2: b 1, a 2, c 3.
    assert ranks["mean_rank"].to_dict() == {"a": 1.5, "b": 1.75, "c": 2.75}
    assert (ranks["n_blocks"] == 2).all() and (ranks["n_methods"] == 3).all()

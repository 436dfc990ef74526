"""Reliability of the ratings (`reliability.csv`, and the retest columns of `raters.csv`).

* Test–retest: a retest item is a test stimulus a rater saw twice (repetitions 1 and 2). Per rater and pooled
  over raters: Pearson r between first and second scores, and the mean absolute difference (MAD). r needs three
  pairs and some spread in both showings, otherwise it is NaN.
* ICC(2,1) and ICC(2,k) of Shrout & Fleiss (1979), "Intraclass correlations: uses in assessing rater
  reliability", Psychol. Bull. 86(2), case 2 (two-way random effects: raters and items both random samples):
  ICC(2,1) = (BMS − EMS) / (BMS + (k − 1) EMS + k (JMS − EMS) / n), the reliability of one rater's score, and
  ICC(2,k) = (BMS − EMS) / (BMS + (JMS − EMS) / n), that of the mean of k raters (the MOS), from the two-way
  ANOVA of an items × raters matrix without missing cells (BMS items, JMS raters, EMS residual mean squares).
  Items are stimuli, a rater's repetitions are averaged; the complete part of the matrix is kept by dropping,
  one at a time, the rater or item with the most missing cells.
* Krippendorff's α (ordinal), from the coincidence matrix (Krippendorff 2011, "Computing Krippendorff's
  Alpha-Reliability", Annenberg School for Communication; its example C is in the tests): units are stimuli,
  the values are every rater's first showing; missing values are allowed, units with a single value are not
  pairable. Ordinal distance δ²(c, k) = (Σ_{g=c..k} n_g − (n_c + n_k)/2)², n_g the number of pairable values g.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from sreval.errors import ParameterError

Level = Literal["nominal", "ordinal", "interval", "ratio"]
COLUMNS = ("measure", "value", "n_raters", "n_items", "n_values", "note")


def icc2(matrix: ArrayLike) -> tuple[float, float]:
    """(ICC(2,1), ICC(2,k)) of an items × raters matrix without missing values (NaN if it is degenerate)."""
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or np.isnan(x).any():
        raise ParameterError("matrix", "ICC needs an items × raters matrix without missing values")
    n, k = x.shape
    if n < 2 or k < 2:
        return math.nan, math.nan
    grand = x.mean()
    ss_items = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_raters = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((x - grand) ** 2).sum() - ss_items - ss_raters
    bms = ss_items / (n - 1)
    jms = ss_raters / (k - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    single_den = bms + (k - 1) * ems + k * (jms - ems) / n
    average_den = bms + (jms - ems) / n
    single = (bms - ems) / single_den if single_den > 0 else math.nan
    average = (bms - ems) / average_den if average_den > 0 else math.nan
    return float(single), float(average)


def complete_block(matrix: pd.DataFrame) -> pd.DataFrame:
    """The largest-looking complete part of an items × raters table: drop the row or column with the largest
    share of missing cells until none is missing."""
    block = matrix
    while block.size and block.isna().any().any():
        row_missing = block.isna().mean(axis=1)
        col_missing = block.isna().mean(axis=0)
        if row_missing.max() >= col_missing.max():
            block = block.drop(index=row_missing.idxmax())
        else:
            block = block.drop(columns=col_missing.idxmax())
    return block


def _distance(values: NDArray[np.float64], totals: NDArray[np.float64], level: Level) -> NDArray[np.float64]:
    if level == "nominal":
        return np.asarray(values[:, None] != values[None, :], dtype=np.float64)
    if level == "ordinal":
        cumulative = np.cumsum(totals)
        # Σ_{g=c..k} n_g − (n_c + n_k)/2 for c ≤ k (symmetric)
        low = np.minimum.outer(np.arange(values.size), np.arange(values.size))
        high = np.maximum.outer(np.arange(values.size), np.arange(values.size))
        between = cumulative[high] - cumulative[low] + totals[low] - (totals[low] + totals[high]) / 2
        return np.asarray(between**2)
    if level == "interval":
        return np.asarray(np.subtract.outer(values, values) ** 2)
    if level == "ratio":
        total = np.add.outer(values, values)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (np.subtract.outer(values, values) / total) ** 2
        return np.asarray(np.nan_to_num(ratio))
    raise ParameterError("level", f"level must be nominal, ordinal, interval or ratio, not {level!r}")


def krippendorff_alpha(units: Sequence[ArrayLike], level: Level = "ordinal") -> float:
    """Krippendorff's α of reliability data given as one sequence of values per unit (NaN = missing).

    NaN when there is nothing pairable or no variation at all."""
    pairable = []
    for unit in units:
        values = np.asarray(unit, dtype=np.float64).ravel()
        values = values[~np.isnan(values)]
        if values.size >= 2:
            pairable.append(values)
    if not pairable:
        return math.nan
    categories = np.unique(np.concatenate(pairable))
    index = {v: i for i, v in enumerate(categories)}
    coincidence = np.zeros((categories.size, categories.size))
    for values in pairable:
        counts = np.zeros(categories.size)
        for v in values:
            counts[index[v]] += 1
        # pairs of different values of the unit (ordered, a value never paired with itself) / (m_u − 1)
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (values.size - 1)
    totals = coincidence.sum(axis=1)
    n = totals.sum()
    delta = _distance(categories, totals, level)
    observed = (coincidence * delta).sum()
    expected = (np.outer(totals, totals) * delta).sum()
    if expected == 0:
        return math.nan
    return float(1.0 - (n - 1) * observed / expected)


def retest_pairs(ratings: pd.DataFrame) -> pd.DataFrame:
    """rater, stimulus, first, second: every item a rater scored in repetitions 1 and 2."""
    scores = ratings.pivot_table(index=["rater", "stimulus"], columns="repetition", values="score", aggfunc="mean")
    if 1 not in scores.columns or 2 not in scores.columns:
        return pd.DataFrame({"rater": [], "stimulus": [], "first": [], "second": []})
    pairs = scores[[1, 2]].dropna().reset_index()
    return pairs.rename(columns={1: "first", 2: "second"}).loc[:, ["rater", "stimulus", "first", "second"]]


def _pearson(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def retest_by_rater(ratings: pd.DataFrame) -> pd.DataFrame:
    """rater, retest_n, retest_r, retest_mad for every rater of `ratings` (NaN without retest pairs)."""
    pairs = retest_pairs(ratings)
    raters = sorted(ratings["rater"].unique())
    rows = []
    for rater in raters:
        own = pairs[pairs["rater"] == rater]
        a, b = own["first"].to_numpy(np.float64), own["second"].to_numpy(np.float64)
        mad = float(np.abs(a - b).mean()) if a.size else math.nan
        rows.append({"rater": rater, "retest_n": int(a.size), "retest_r": _pearson(a, b), "retest_mad": mad})
    return pd.DataFrame(rows, columns=["rater", "retest_n", "retest_r", "retest_mad"])


def reliability_table(ratings: pd.DataFrame) -> pd.DataFrame:
    """The rows of `reliability.csv` (`COLUMNS`)."""
    rows = []
    pairs = retest_pairs(ratings)
    a, b = pairs["first"].to_numpy(np.float64), pairs["second"].to_numpy(np.float64)
    n_pair_raters = int(pairs["rater"].nunique())
    note = "pooled over raters: first vs second showing of retest items"
    rows.append(
        {
            "measure": "test_retest_r",
            "value": _pearson(a, b),
            "n_raters": n_pair_raters,
            "n_items": int(pairs["stimulus"].nunique()),
            "n_values": int(a.size),
            "note": note,
        }
    )
    rows.append(
        {
            "measure": "test_retest_mad",
            "value": float(np.abs(a - b).mean()) if a.size else math.nan,
            "n_raters": n_pair_raters,
            "n_items": int(pairs["stimulus"].nunique()),
            "n_values": int(a.size),
            "note": note,
        }
    )

    matrix = ratings.pivot_table(index="stimulus", columns="rater", values="score", aggfunc="mean")
    block = complete_block(matrix)
    single, average = icc2(block.to_numpy(np.float64)) if block.size else (math.nan, math.nan)
    dropped = f"{matrix.shape[1] - block.shape[1]} raters and {matrix.shape[0] - block.shape[0]} stimuli dropped"
    for measure, value in (("icc_2_1", single), ("icc_2_k", average)):
        rows.append(
            {
                "measure": measure,
                "value": value,
                "n_raters": int(block.shape[1]),
                "n_items": int(block.shape[0]),
                "n_values": int(block.size),
                "note": f"Shrout-Fleiss two-way random; complete stimuli x raters block ({dropped})",
            }
        )

    first = ratings[ratings["repetition"] == 1]
    units = [group.to_numpy(np.float64) for _, group in first.groupby("stimulus")["score"]]
    alpha = krippendorff_alpha(units, "ordinal")
    rows.append(
        {
            "measure": "krippendorff_alpha_ordinal",
            "value": alpha,
            "n_raters": int(first["rater"].nunique()),
            "n_items": len(units),
            "n_values": int(sum(u.size for u in units if u.size >= 2)),
            "note": "units = stimuli, first showings; missing values allowed",
        }
    )
    return pd.DataFrame(rows, columns=list(COLUMNS))

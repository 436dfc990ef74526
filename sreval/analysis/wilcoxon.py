"""Paired comparison of methods: Wilcoxon signed-rank test, multiple-testing correction, rank-biserial effect size.

Which pairs (`wilcoxon.csv`): for every dataset and every pair of methods (a, b), one paired
difference a − b per

* `rater-image` (default): rater × image, both methods rated by that rater on that image; a rater's repeated
  ratings of the same item (retest) are averaged first, so each rater × image counts once;
* `image-mos`: image, the per-image MOS of a against that of b (fewer, less noisy pairs).

The test (Wilcoxon 1945; ranks and normal approximation as in Hollander, Wolfe & Chicken, "Nonparametric
Statistical Methods", 3rd ed. 2014, §3.1), two-sided, implemented here and checked against
`scipy.stats.wilcoxon` and against brute-force enumeration of all 2ⁿ sign assignments in the tests:

* zero differences: `zero_method="wilcox"` (default, scipy's default) drops them before ranking, so `n_pairs`
  counts them but the test does not (`n_zero` says how many); `"pratt"` (Pratt 1959, JASA 54) ranks them with
  the others and then leaves their ranks out of W+ and W−;
* ties among |d|: average ranks (midranks);
* `method="auto"`: the exact null distribution when at most `EXACT_MAX_N` (50) differences are non-zero,
  otherwise the normal approximation. The exact distribution is that of W+ = Σ (random sign) × rank over the
  observed ranks, computed by dynamic programming on doubled midranks (integers), so it is exact also with
  ties and zeros (the conditional, permutation null distribution). Without ties or zeros it is the classical
  table (scipy's `method="exact"`); with ties and n ≤ 13 it equals scipy's (complete) permutation test;
* normal approximation: z = (W+ − E W+) / √Var W+ with the tie correction Var = n(n+1)(2n+1)/24 − Σ(t³−t)/48
  (and Pratt's adjustment for zeros, Cureton 1967, JASA 62), no continuity correction (as scipy's default);
* p = 2 · min(P(W+ ≤ w), P(W+ ≥ w)), at most 1. With no non-zero difference there is nothing to test: p = 1.
* `statistic` is min(W+, W−) (scipy's two-sided statistic).

Effect size: the matched-pairs rank-biserial correlation r = (W+ − W−) / (W+ + W−) (Kerby 2014, "The simple
difference formula", Comprehensive Psychology 3:11.IT.3.1), from the same ranks; r > 0 means a is rated higher.

Family-wise correction over every test of the table (all datasets and pairs): Holm (1979) step-down by
default (`p_holm`); Benjamini–Hochberg (1995) false discovery rate as an option (`p_bh`). Both columns are
written; `significant` uses the chosen one at level `alpha`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from sreval.analysis.ratings import rater_means
from sreval.errors import ParameterError

ZeroMethod = Literal["wilcox", "pratt"]
TestMethod = Literal["auto", "exact", "normal"]
Pairing = Literal["rater-image", "image-mos"]
Correction = Literal["holm", "bh"]
PAIRINGS: tuple[Pairing, ...] = ("rater-image", "image-mos")
CORRECTIONS: tuple[Correction, ...] = ("holm", "bh")
#: Largest number of non-zero differences for which `method="auto"` uses the exact distribution.
EXACT_MAX_N = 50
#: Columns of `compare_methods`: the ones callers rely on first, then extras.
COLUMNS = (
    "dataset", "method_a", "method_b", "n_pairs", "statistic", "p", "p_holm", "effect_size", "significant",
    "p_bh", "n_zero", "mean_difference", "test",
)  # fmt: skip


@dataclass(frozen=True)
class SignedRankResult:
    """A two-sided Wilcoxon signed-rank test of paired differences."""

    n: int  # pairs
    n_zero: int  # pairs with zero difference
    w_plus: float  # sum of the ranks of positive differences
    w_minus: float  # sum of the ranks of negative differences
    statistic: float  # min(W+, W−)
    p: float
    method: Literal["exact", "normal", "none"]  # none: no non-zero difference, p = 1
    z: float  # normal approximation's z (NaN for the exact test)
    effect_size: float  # matched-pairs rank-biserial correlation (W+ − W−) / (W+ + W−)


def signed_rank_null(doubled_ranks: ArrayLike) -> NDArray[np.float64]:
    """Null distribution of 2·W+ when each rank gets a random sign: pmf[k] = P(2·W+ = k), k = 0..Σ 2·rank.

    `doubled_ranks` are twice the (mid)ranks of the non-zero differences, i.e. integers."""
    values = np.asarray(doubled_ranks, dtype=np.float64)
    steps = np.rint(values).astype(np.int64)
    if values.size and (np.abs(steps - values).max() > 1e-9 or steps.min() < 1):
        raise ParameterError("doubled_ranks", "doubled_ranks must be positive integers")
    pmf = np.ones(1)
    for step in steps:
        grown = np.zeros(pmf.size + step)
        grown[: pmf.size] += pmf  # this rank's sign is negative: W+ unchanged
        grown[step:] += pmf  # positive: W+ grows by the rank
        pmf = grown * 0.5
    return pmf


def signed_rank_test(
    x: ArrayLike,
    y: ArrayLike | None = None,
    *,
    zero_method: ZeroMethod = "wilcox",
    method: TestMethod = "auto",
) -> SignedRankResult:
    """Two-sided Wilcoxon signed-rank test of d = x − y (or of x when `y` is None); see the module docstring."""
    d = np.asarray(x, dtype=np.float64).ravel()
    if y is not None:
        other = np.asarray(y, dtype=np.float64).ravel()
        if other.shape != d.shape:
            raise ParameterError("y", f"x and y must have the same length, got {d.size} and {other.size}")
        d = d - other
    if not np.isfinite(d).all():
        raise ParameterError("x", "differences must be finite numbers")
    if zero_method not in ("wilcox", "pratt"):
        raise ParameterError("zero_method", f"zero_method must be 'wilcox' or 'pratt', not {zero_method!r}")
    if method not in ("auto", "exact", "normal"):
        raise ParameterError("method", f"method must be 'auto', 'exact' or 'normal', not {method!r}")
    n, zero = d.size, d == 0
    n_zero = int(zero.sum())
    ranked = d[~zero] if zero_method == "wilcox" else d
    ranks = stats.rankdata(np.abs(ranked)) if ranked.size else np.zeros(0)
    nonzero = ranked != 0
    w_plus = float(ranks[ranked > 0].sum())
    w_minus = float(ranks[ranked < 0].sum())
    statistic = min(w_plus, w_minus)
    m = int(nonzero.sum())
    if m == 0:
        return SignedRankResult(n, n_zero, 0.0, 0.0, 0.0, 1.0, "none", math.nan, 0.0)
    effect = (w_plus - w_minus) / (w_plus + w_minus)

    if method == "exact" or (method == "auto" and m <= EXACT_MAX_N):
        pmf = signed_rank_null(2.0 * ranks[nonzero])
        k = round(2.0 * w_plus)
        p = min(1.0, 2.0 * min(float(pmf[: k + 1].sum()), float(pmf[k:].sum())))
        return SignedRankResult(n, n_zero, w_plus, w_minus, statistic, p, "exact", math.nan, effect)

    size = ranked.size  # non-zero differences (wilcox), or all of them (pratt)
    mean = size * (size + 1) / 4
    var = size * (size + 1) * (2 * size + 1) / 24
    if zero_method == "pratt":  # the zeros' ranks 1..n0 cannot carry a sign (Cureton 1967)
        mean -= n_zero * (n_zero + 1) / 4
        var -= n_zero * (n_zero + 1) * (2 * n_zero + 1) / 24
    _, ties = np.unique(np.abs(ranked[nonzero]), return_counts=True)
    var -= float((ties**3 - ties).sum()) / 48
    if var <= 0:
        return SignedRankResult(n, n_zero, w_plus, w_minus, statistic, 1.0, "normal", 0.0, effect)
    z = (w_plus - mean) / math.sqrt(var)
    p = min(1.0, 2.0 * float(stats.norm.sf(abs(z))))
    return SignedRankResult(n, n_zero, w_plus, w_minus, statistic, p, "normal", z, effect)


def _ranked(p: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]]:
    """What both corrections start from: the p-values, a result of their shape that is NaN until filled, and the
    positions of the finite p-values, smallest first (ties in input order). A NaN is no test: it is not ranked."""
    values = np.asarray(p, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(values))
    return values, np.full(values.shape, np.nan), finite[np.argsort(values[finite], kind="stable")]


def holm(p: ArrayLike) -> NDArray[np.float64]:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted as a test)."""
    values, out, order = _ranked(p)
    m = order.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * values[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def benjamini_hochberg(p: ArrayLike) -> NDArray[np.float64]:
    """Benjamini–Hochberg step-up adjusted p-values (q-values); NaN stays NaN and is not counted."""
    values, out, order = _ranked(p)
    m = order.size
    scaled = values[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out[order] = np.minimum(adjusted, 1.0)
    return out


def paired_scores(
    ratings: pd.DataFrame, dataset: str, method_a: str, method_b: str, pairing: Pairing = "rater-image"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The paired scores (a, b) of two methods on one dataset (see the module docstring for `pairing`)."""
    subset = ratings[(ratings["dataset"] == dataset) & ratings["method"].isin([method_a, method_b])]
    if pairing == "rater-image":
        table = rater_means(subset).pivot_table(index=["rater", "image"], columns="method", values="score")
    elif pairing == "image-mos":
        table = subset.pivot_table(index="image", columns="method", values="score", aggfunc="mean")
    else:
        raise ParameterError("pairing", f"pairing must be one of {', '.join(PAIRINGS)}, not {pairing!r}")
    if method_a not in table.columns or method_b not in table.columns:
        return np.zeros(0), np.zeros(0)
    both = table[[method_a, method_b]].dropna()
    return both[method_a].to_numpy(np.float64), both[method_b].to_numpy(np.float64)


def compare_methods(
    ratings: pd.DataFrame,
    *,
    pairing: Pairing = "rater-image",
    correction: Correction = "holm",
    alpha: float = 0.05,
    zero_method: ZeroMethod = "wilcox",
    method: TestMethod = "auto",
) -> pd.DataFrame:
    """Every pair of methods within every dataset, tested (`COLUMNS`; method_a < method_b by name)."""
    if correction not in CORRECTIONS:
        raise ParameterError("correction", f"correction must be one of {', '.join(CORRECTIONS)}, not {correction!r}")
    if not 0 < alpha < 1:
        raise ParameterError("alpha", f"alpha must be in (0, 1), got {alpha}")
    rows = []
    for dataset in sorted(ratings["dataset"].unique()):
        methods = sorted(ratings.loc[ratings["dataset"] == dataset, "method"].unique())
        for a, b in itertools.combinations(methods, 2):
            xa, xb = paired_scores(ratings, dataset, a, b, pairing)
            if xa.size == 0:
                rows.append(
                    {
                        "dataset": dataset,
                        "method_a": a,
                        "method_b": b,
                        "n_pairs": 0,
                        "statistic": math.nan,
                        "p": math.nan,
                        "effect_size": math.nan,
                        "n_zero": 0,
                        "mean_difference": math.nan,
                        "test": "none",
                    }
                )
                continue
            result = signed_rank_test(xa, xb, zero_method=zero_method, method=method)
            rows.append({
                "dataset": dataset, "method_a": a, "method_b": b, "n_pairs": result.n, "statistic": result.statistic,
                "p": result.p, "effect_size": result.effect_size, "n_zero": result.n_zero,
                "mean_difference": float(np.mean(xa - xb)), "test": result.method,
            })  # fmt: skip
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_holm", "p_bh", "significant")])
    table["p_holm"] = holm(table["p"].to_numpy(np.float64)) if len(table) else []
    table["p_bh"] = benjamini_hochberg(table["p"].to_numpy(np.float64)) if len(table) else []
    chosen = table["p_holm"] if correction == "holm" else table["p_bh"]
    table["significant"] = (chosen < alpha).fillna(False).astype(bool)
    return table.loc[:, list(COLUMNS)].astype({"n_pairs": "int64", "n_zero": "int64"})

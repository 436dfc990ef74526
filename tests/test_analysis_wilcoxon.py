"""Paired Wilcoxon signed-rank tests and multiple-comparison corrections (`sreval.analysis.wilcoxon`).

Known answers: hand-made examples worked out here (exact p-values also by brute-force enumeration of all 2ⁿ sign
assignments), a second implementation (`scipy.stats`) and the classical table of the null distribution.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from analysis_helpers import synthetic_study
from scipy import stats

from sreval.analysis import validate_ratings
from sreval.analysis.wilcoxon import (
    benjamini_hochberg,
    compare_methods,
    holm,
    signed_rank_null,
    signed_rank_test,
)


def brute_force_p(d: np.ndarray) -> float:
    """Two-sided p of W+ over all 2ⁿ sign assignments of the (mid)ranks of the non-zero differences."""
    nonzero = d[d != 0]
    ranks = stats.rankdata(np.abs(nonzero))
    observed = ranks[nonzero > 0].sum()
    sums = np.array([np.dot(signs, ranks) for signs in itertools.product((0, 1), repeat=nonzero.size)])
    return min(1.0, 2 * min(np.mean(sums <= observed + 1e-9), np.mean(sums >= observed - 1e-9)))

def test_exact_p_values_by_hand_and_by_enumeration() -> None:
    # All five differences positive: W+ = 15 has probability 1/32 under H0, so p = 2/32.
    all_up = signed_rank_test([1, 2, 3, 4, 5])
    assert (all_up.method, all_up.w_plus, all_up.w_minus, all_up.statistic) == ("exact", 15, 0, 0)
    assert all_up.p == pytest.approx(2 / 32, abs=1e-15) and all_up.effect_size == 1.0
    # One negative, the smallest: W+ = 14, P(W+ ≥ 14) = 2/32 (W+ = 14 or 15), p = 4/32; r = (14 − 1)/15.
    one_down = signed_rank_test([0, 2, 3, 4, 5], [1, 0, 0, 0, 0])  # d = x − y = −1, 2, 3, 4, 5
    assert one_down.w_minus == 1 and one_down.p == pytest.approx(4 / 32, abs=1e-15)
    assert one_down.effect_size == pytest.approx(13 / 15, abs=1e-15)

    cases = [
        np.array([1.5, -0.5, 2.0, 3.0, -1.0, 4.0, 2.5, 0.7, -3.5]),  # no ties, no zeros
        np.array([1, -1, 2, 2, 0, 3, -2, 1, 0, 4]),  # ties and zeros
        np.array([2, 2, 2, -2, 1, 1, -1, 3, 3, 3, 0, 0, -3, 1]),  # heavy ties
        np.array([0.5, 0.5, 0.5]),
    ]
    rng = np.random.default_rng(4)
    cases += [rng.integers(-3, 4, size=n).astype(float) for n in (6, 9, 12, 14)]
    for d in cases:
        if not (d != 0).any():
            continue
        result = signed_rank_test(d)
        assert result.method == "exact"
        assert result.p == pytest.approx(brute_force_p(d), abs=1e-12), d

def test_null_distribution_is_the_classical_table() -> None:
    pmf = signed_rank_null(2 * np.arange(1, 11))  # n = 10, no ties: 2·W+ = 0, 2, ..., 110
    assert pmf.sum() == pytest.approx(1.0, abs=1e-15)
    w = np.arange(pmf.size)[::2] / 2
    assert np.count_nonzero(pmf[1::2]) == 0
    assert float(np.dot(pmf[::2], w)) == pytest.approx(10 * 11 / 4, abs=1e-12)
    # Tabled lower-tail critical value for n = 10: P(W+ ≤ 8) = 0.0244 ≤ 0.025 < P(W+ ≤ 9) = 0.0322.
    assert pmf[: 2 * 8 + 1].sum() == pytest.approx(25 / 1024, abs=1e-15)
    assert pmf[: 2 * 9 + 1].sum() == pytest.approx(33 / 1024, abs=1e-15)

def test_signed_rank_test_agrees_with_scipy() -> None:
    rng = np.random.default_rng(0)
    for trial in range(90):
        n = int(rng.integers(2, 70))
        d = [rng.normal(0.3, 1, n), rng.integers(-3, 4, n).astype(float), np.round(rng.normal(0.2, 1, n), 1)][trial % 3]
        if not (d != 0).any():
            continue
        for zero_method in ("wilcox", "pratt"):
            ours = signed_rank_test(d, zero_method=zero_method, method="normal")
            theirs = stats.wilcoxon(d, zero_method=zero_method, method="asymptotic", correction=False)
            assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-9)
            assert ours.p == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-14), (zero_method, d)
        has_ties = np.unique(np.abs(d[d != 0])).size < (d != 0).sum()
        if n <= 50 and not has_ties and (d != 0).all():
            assert signed_rank_test(d).p == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, abs=1e-12)
        if n <= 10:  # scipy's auto: exact, or its complete permutation test with ties or zeros
            assert signed_rank_test(d).p == pytest.approx(stats.wilcoxon(d).pvalue, abs=1e-12)
    big = rng.normal(0.1, 1, 200)
    assert signed_rank_test(big).method == "normal"
    assert signed_rank_test(big).p == pytest.approx(stats.wilcoxon(big).pvalue, rel=1e-9)

def test_no_difference_at_all_is_no_evidence() -> None:
    result = signed_rank_test([3, 4, 5], [3, 4, 5])
    assert (result.p, result.method, result.n, result.n_zero, result.effect_size) == (1.0, "none", 3, 3, 0.0)

def test_holm_and_benjamini_hochberg_by_hand() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # Holm: sorted 0.005·4, 0.01·3, 0.03·2, 0.04·1, made monotone: 0.02, 0.03, 0.06, 0.06.
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    # BH: sorted p·4/rank = 0.02, 0.02, 0.04, 0.04 (already monotone).
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02], abs=1e-15)
    rng = np.random.default_rng(2)
    for _ in range(20):
        q = rng.uniform(0, 0.2, rng.integers(1, 30))
        assert benjamini_hochberg(q) == pytest.approx(stats.false_discovery_control(q, method="bh"), abs=1e-12)
    with_nan = holm([0.01, np.nan, 0.02])
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.02])

def test_compare_methods_pairs_per_rater_image_or_per_image() -> None:
    rows = []
    for rater, offset in (("a", 0), ("b", 1), ("c", 0)):
        for image in ("x", "y"):
            rows.append({"rater": rater, "method": "good", "dataset": "d", "image": image, "score": 4 + offset})
            rows.append({"rater": rater, "method": "bad", "dataset": "d", "image": image, "score": 2})
    rows.append({"rater": "a", "method": "good", "dataset": "d", "image": "x", "score": 2, "repetition": 2})
    rows.append({"rater": "c", "method": "bad", "dataset": "d", "image": "z", "score": 1})  # no pair
    ratings = validate_ratings(pd.DataFrame(rows).fillna({"repetition": 1}))
    table = compare_methods(ratings).set_index(["method_a", "method_b"])
    row = table.loc["bad", "good"]
    # rater a on x: good = mean(4, 2) = 3; differences bad − good: −1, −2, −3, −3, −2, −2 (6 pairs).
    assert row["n_pairs"] == 6 and row["n_zero"] == 0 and row["effect_size"] == -1.0
    assert row["mean_difference"] == pytest.approx(-13 / 6)
    assert row["p"] == pytest.approx(signed_rank_test([-1, -2, -3, -3, -2, -2]).p)
    per_image = compare_methods(ratings, pairing="image-mos").set_index(["method_a", "method_b"]).loc["bad", "good"]
    assert per_image["n_pairs"] == 2  # images x and y; z has no "good"
    assert list(compare_methods(ratings).columns[:9]) == [
        "dataset", "method_a", "method_b", "n_pairs", "statistic", "p", "p_holm", "effect_size", "significant",
    ]  # fmt: skip

def test_compare_methods_corrects_over_the_table() -> None:
    table = compare_methods(synthetic_study(), correction="bh")
    assert len(table) == 2 * 6  # 2 datasets × C(4, 2) pairs
    assert table["p_holm"].to_numpy() == pytest.approx(holm(table["p"].to_numpy()))
    assert table["p_bh"].to_numpy() == pytest.approx(benjamini_hochberg(table["p"].to_numpy()))
    assert (table["significant"] == (table["p_bh"] < 0.05)).all()
    hr_nn = table[(table["method_a"] == "hr") & (table["method_b"] == "nn")]
    assert (hr_nn["effect_size"] > 0.9).all() and hr_nn["significant"].all()

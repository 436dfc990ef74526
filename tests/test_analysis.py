"""MOS study statistics (`sreval.analysis`, `sreval analyze`): every analysis against a known answer.

Known answers are of three kinds: hand-made examples worked out here (exact Wilcoxon p-values also by brute-force
enumeration of all 2ⁿ sign assignments), a second implementation (`scipy.stats`), and published values: SUREAL's
demo outputs and unit-test values on the Netflix public dataset (`ratings/sureal` of the shared data, beside the
benchmarks of SREVAL_DATA_ROOT), Krippendorff (2011) and Shrout & Fleiss (1979) worked examples.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sreval.analysis import (
    AnalysisOptions,
    analyze,
    read_ratings_csv,
    select_ratings,
    validate_ratings,
)
from sreval.analysis.correlation import correlate, correlation_table, logistic4
from sreval.analysis.mos import mos_table, t_interval
from sreval.analysis.power import RaterModel, rater_model_from_ratings, raters_needed, simulated_power
from sreval.analysis.ranks import rank_table
from sreval.analysis.ratings import gold_failures, parse_scale
from sreval.analysis.reliability import complete_block, icc2, krippendorff_alpha, retest_by_rater
from sreval.analysis.screening import bt500_screen, screen_raters
from sreval.analysis.sureal import ROUNDING_SD, bias_removed, fit_p910, p913_bias, subject_model
from sreval.analysis.wilcoxon import (
    benjamini_hochberg,
    compare_methods,
    holm,
    signed_rank_null,
    signed_rank_test,
)
from sreval.cli import main
from sreval.errors import SrevalError
from sreval.imageio import save_png
from sreval.results import open_store
from sreval.results.store import ImageRecord, MethodRecord, RunRecord, ValueRecord
from sreval.study import DraftImage, DraftMethod, DraftStimulus, StudyDraft, open_study_store
from sreval.study.simulate import simulate

# --- helpers ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sureal(data_root: Path) -> Path:
    """Netflix/sureal's datasets and demo outputs in the shared data (`ratings/sureal`)."""
    path = data_root.parent / "ratings" / "sureal"
    if not (path / "itur_bt500_demo" / "README.md").is_file():
        if os.environ.get("SREVAL_REQUIRE_DATA") == "1":
            pytest.fail(f"SUREAL reference data is required (SREVAL_REQUIRE_DATA=1) but not at {path}")
        pytest.skip(f"SUREAL reference data not at {path}")
    return path


def nflx(sureal: Path) -> np.ndarray:
    """NFLX_public (SUREAL's test copy): 79 stimuli × 26 subjects, ACR 1–5. A data module, loaded as such."""
    module = runpy.run_path(str(sureal / "test" / "resource" / "NFLX_dataset_public_raw.py"))
    return np.array([video["os"] for video in module["dis_videos"]], dtype=np.float64)


def corrupted_nflx(sureal: Path) -> np.ndarray:
    """SUREAL's CorruptSubjectRawDatasetReader as its tests use it: np.random.seed(0), then the scores of subjects
    0..4 each shuffled over stimuli (legacy RandomState, whose stream numpy keeps stable)."""
    scores = nflx(sureal)
    rng = np.random.RandomState(0)
    for subject in range(5):
        rng.shuffle(scores[:, subject])
    return scores


def demo_expected(readme: Path) -> dict[str, np.ndarray]:
    """The expected output printed in a SUREAL demo README (a pprint of four lists)."""
    text = readme.read_text()
    keys = ["bias_i", "inconsistency_i", "mos_j", "sos_j"]
    starts = [text.index(f"'{key}'") for key in keys] + [len(text)]
    number = r"-?\d+\.\d+(?:e-?\d+)?"
    return {
        key: np.array([float(x) for x in re.findall(number, text[starts[i] + len(key) + 2 : starts[i + 1]])])
        for i, key in enumerate(keys)
    }


def long_ratings(matrix: np.ndarray, *, method: str = "m", dataset: str = "d") -> pd.DataFrame:
    """A stimuli × raters (× repetitions) array (NaN = missing) as a long ratings table; stimulus j is image j."""
    o = matrix if matrix.ndim == 3 else matrix[:, :, None]
    rows = [
        {"rater": f"s{i:02d}", "stimulus": f"j{j:03d}", "method": method, "dataset": dataset, "image": f"j{j:03d}",
         "repetition": r + 1, "score": o[j, i, r]}
        for j, i, r in itertools.product(range(o.shape[0]), range(o.shape[1]), range(o.shape[2]))
        if not np.isnan(o[j, i, r])
    ]  # fmt: skip
    return validate_ratings(pd.DataFrame(rows), scale=None)


def synthetic_study(seed: int = 1, raters: int = 8, images: int = 6, retest: float = 0.2) -> pd.DataFrame:
    """Long ratings of nn < bicubic < srgan < hr on two datasets, from the P.910 model (rounded, clipped)."""
    rng = np.random.default_rng(seed)
    quality = {"nn": 1.5, "bicubic": 2.3, "srgan": 3.7, "hr": 4.5}
    offsets = rng.normal(0, 0.3, (2, images))  # image effects, shared by all raters
    rows = []
    for r in range(raters):
        bias, upsilon = rng.normal(0, 0.3), abs(rng.normal(0, 0.4)) + 0.2
        for k, dataset in enumerate(("set5", "set14")):
            for image in range(images):
                offset = offsets[k, image]
                for method, q in quality.items():
                    for repetition in (1, 2) if rng.random() < retest else (1,):
                        latent = q + offset + bias + upsilon * rng.normal()
                        score = np.clip(np.floor(latent + 0.5), 1, 5)
                        rows.append({
                            "rater": f"r{r:02d}", "stimulus": f"{method}-{dataset}-{image}", "method": method,
                            "dataset": dataset, "image": f"im{image}", "repetition": repetition, "score": score,
                        })  # fmt: skip
    return validate_ratings(pd.DataFrame(rows))


# --- Wilcoxon signed-rank test ------------------------------------------------------------------------------


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


# --- MOS ----------------------------------------------------------------------------------------------------


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


# --- BT.500 screening --------------------------------------------------------------------------------------


def test_bt500_rejects_the_erratic_rater_only() -> None:
    """Hand-made: 20 presentations, 11 raters scoring {2, 2, 3 ×7, 4, 4} (rotating who gives which), and rater 0
    alternating 5 and 1. With the 5: ū = 38/12, m₂ = 7.667/12, m₄ = 15.97/12, β₂ = 3.26 (normal: 2S limits),
    S = √(7.667/11) = 0.835, so 5 ≥ ū + 2S = 4.84 and nobody else is outside; the 1 mirrors it. Rater 0: P = Q =
    10, (P + Q)/20 = 1 > 0.05 and |P − Q|/(P + Q) = 0 < 0.3: rejected; every other rater: P = Q = 0."""
    others = np.array([2, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4], dtype=float)
    scores = np.array([np.concatenate([[5.0 if j % 2 else 1.0], np.roll(others, j)]) for j in range(20)])
    result = bt500_screen(scores)
    assert (result.p[0], result.q[0]) == (10, 10) and result.rejected[0]
    assert not result.p[1:].any() and not result.q[1:].any() and not result.rejected[1:].any()
    assert (result.presentations == 20).all()
    # The same through the long-table interface.
    screened = screen_raters(long_ratings(scores)).set_index("rater")
    assert list(screened.index[screened["rejected_bt500"]]) == ["s00"]


def test_bt500_keeps_a_merely_biased_rater() -> None:
    """As above, but rater 0 always gives 5: outliers on one side only (P = 20, Q = 0, |P − Q|/(P + Q) = 1 ≥ 0.3).
    BT.500 rejects inconsistent observers, not biased ones (P.913 bias removal is for those)."""
    others = np.array([2, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4], dtype=float)
    scores = np.array([np.concatenate([[5.0], np.roll(others, j)]) for j in range(20)])
    result = bt500_screen(scores)
    assert (result.p[0], result.q[0]) == (20, 0) and not result.rejected.any()


def test_bt500_reproduces_sureal_on_corrupted_nflx(sureal: Path) -> None:
    scores = corrupted_nflx(sureal)
    # The reproduction is SUREAL's: its MosModel gives mean 3.5447906523855899, var 0.95893305294535369 here,
    # and itur_bt500_demo/sample_data.csv is this matrix with one vote removed.
    mos = scores.mean(axis=1)
    assert (mos.mean(), mos.var()) == pytest.approx((3.5447906523855899, 0.95893305294535369), abs=1e-12)
    demo = np.genfromtxt(sureal / "itur_bt500_demo" / "sample_data.csv", delimiter=",")
    assert np.isnan(demo).sum() == 1 and np.array_equal(demo[~np.isnan(demo)], scores[~np.isnan(demo)])

    # SUREAL's BT500 (MosModel, subject_rejection=True) uses S with N: it rejects subjects 0 and 1, and the MOS of
    # the others has mean 3.5611814345991566, var 1.1049505732699529 (test_mos_subjective_model_corruptdata_
    # subjreject, places=4).
    sureal_like = bt500_screen(scores, ddof=0)
    assert list(np.flatnonzero(sureal_like.rejected)) == [0, 1]
    kept = scores[:, ~sureal_like.rejected].mean(axis=1)
    assert (kept.mean(), kept.var()) == pytest.approx((3.5611814345991566, 1.1049505732699529), abs=1e-10)
    # BT.500 as written (S with N − 1) is a little more lenient here.
    assert list(np.flatnonzero(bt500_screen(scores).rejected)) == [1]

    # P.913 bias removal, then screening (SUREAL's BiasremvSubjrejMosModel): mean 3.5447906523855885,
    # var 1.09500013352561, bias var 0.08903258562151982 (places=8).
    bias = p913_bias(scores)
    assert (bias.mean(), bias.var()) == pytest.approx((0.0, 0.08903258562151982), abs=1e-10)
    removed = scores - bias[None, :]
    kept = removed[:, ~bt500_screen(removed, ddof=0).rejected].mean(axis=1)
    assert (kept.mean(), kept.var()) == pytest.approx((3.5447906523855885, 1.09500013352561), abs=1e-10)


# --- P.910 / SUREAL model and P.913 -------------------------------------------------------------------------


@pytest.mark.parametrize("demo", ["itur_bt500_demo", "itut_p910_demo"])
def test_p910_model_reproduces_sureals_published_demo_output(sureal: Path, demo: str) -> None:
    """The demo's alternating projection on sample_data.csv (NFLX_public, subjects 0–4 corrupted): all 26 biases
    and inconsistencies, all 79 MOS and SOS, as printed in the README. Tolerance 1e-6 (we agree to ~5e-9; the
    demo stops when the MOS moves by less than 1e-8)."""
    expected = demo_expected(sureal / demo / "README.md")
    fit = fit_p910(np.genfromtxt(sureal / "itur_bt500_demo" / "sample_data.csv", delimiter=","))
    assert fit.converged
    assert fit.bias == pytest.approx(expected["bias_i"], abs=1e-6)
    assert fit.inconsistency == pytest.approx(expected["inconsistency_i"], abs=1e-6)
    assert fit.quality == pytest.approx(expected["mos_j"], abs=1e-6)
    assert fit.sos == pytest.approx(expected["sos_j"], abs=1e-6)


def test_p910_model_matches_sureal_mle_on_nflx_public(sureal: Path) -> None:
    """SUREAL's unit test of its MLE_CO model on NFLX_public (test_observer_content_aware_subjective_model_
    nocontent, places=4): sums and variances of bias, inconsistency and quality. SUREAL leaves the bias sum at
    −0.0908 where we centre it, so its quality sum is ours minus 79 × (−0.0908 / 26); variances do not move."""
    fit = fit_p910(nflx(sureal))
    sureal_bias_sum = -0.090840910829083799
    assert fit.bias.sum() == pytest.approx(0.0, abs=1e-10)
    assert fit.bias.var() == pytest.approx(0.089032585621095089, abs=1e-6)
    assert fit.inconsistency.sum() == pytest.approx(15.681766163430936, abs=1e-6)
    assert fit.inconsistency.var() == pytest.approx(0.012565584832977776, abs=1e-6)
    assert fit.quality.sum() - 79 * sureal_bias_sum / 26 == pytest.approx(280.31447815213642, abs=1e-5)
    assert fit.quality.var() == pytest.approx(1.4355485462027884, abs=1e-6)
    # Fisher information (diagonal): with every subject rating every stimulus, SE(ψ_j) is the same for all j.
    assert fit.quality_se == pytest.approx(np.full(79, 1 / math.sqrt((1 / fit.inconsistency**2).sum())))
    assert fit.bias_se == pytest.approx(fit.inconsistency / math.sqrt(79))
    assert fit.inconsistency_se == pytest.approx(fit.inconsistency / math.sqrt(2 * 79))
    # P.913 bias removal (SUREAL's BiasremvMosModel): the same biases as the corrupted set, var 0.0890325856215.
    assert p913_bias(nflx(sureal)).var() == pytest.approx(0.08903258562151982, abs=1e-10)


def test_analyze_cli_reproduces_sureal_on_the_demo_data(
    sureal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end: the demo's sample_data.csv as a long ratings CSV through `sreval analyze`. raters.csv and
    quality.csv carry the published P.910 biases, inconsistencies and MOS (the rounding bound, 0.289, is below
    every inconsistency here, 0.446 at least), and BT.500 rejects the most erratic corrupted subject."""
    expected = demo_expected(sureal / "itur_bt500_demo" / "README.md")
    matrix = np.genfromtxt(sureal / "itur_bt500_demo" / "sample_data.csv", delimiter=",")
    long_ratings(matrix, dataset="nflx").to_csv(tmp_path / "nflx.csv", index=False)
    assert main(["analyze", "--ratings", str(tmp_path / "nflx.csv"), "--out", str(tmp_path / "out")]) == 0
    assert "2053 ratings by 26 raters" in capsys.readouterr().out
    raters = pd.read_csv(tmp_path / "out" / "raters.csv")
    assert raters["bias"].to_numpy() == pytest.approx(expected["bias_i"], abs=1e-6)
    assert raters["inconsistency"].to_numpy() == pytest.approx(expected["inconsistency_i"], abs=1e-6)
    assert list(raters.loc[raters["rejected_bt500"], "rater"]) == ["s01"]
    quality = pd.read_csv(tmp_path / "out" / "quality.csv")
    assert quality["quality"].to_numpy() == pytest.approx(expected["mos_j"], abs=1e-6)
    assert quality["sos"].to_numpy() == pytest.approx(expected["sos_j"], abs=1e-6)


def test_p910_recovers_the_truth_and_its_intervals_cover_it() -> None:
    rng = np.random.default_rng(7)
    n_stimuli, n_raters = 300, 24
    quality = rng.uniform(1, 5, n_stimuli)
    bias = rng.normal(0, 0.5, n_raters)
    bias -= bias.mean()
    upsilon = rng.uniform(0.3, 1.2, n_raters)
    scores = quality[:, None] + bias[None, :] + upsilon[None, :] * rng.normal(size=(n_stimuli, n_raters))
    scores[rng.random(scores.shape) < 0.2] = np.nan  # incomplete design
    fit = fit_p910(scores)
    assert np.corrcoef(fit.bias, bias)[0, 1] > 0.98 and np.corrcoef(fit.inconsistency, upsilon)[0, 1] > 0.98
    covered = np.abs(fit.quality - quality) <= 1.959964 * fit.quality_se
    assert 0.91 <= covered.mean() <= 0.99
    # The likelihood is at a maximum: moving any block lowers it.
    base = fit.log_likelihood
    residual = scores - fit.quality[:, None] - fit.bias[None, :]
    for scale in (0.9, 1.1):
        moved = np.nansum(stats.norm.logpdf(residual, scale=scale * fit.inconsistency[None, :]))
        assert moved < base


def test_subject_model_on_long_ratings_with_repetitions_and_a_perfect_rater() -> None:
    ratings = synthetic_study(raters=6, images=5, retest=0.3)
    # r05 answers exactly the rounded MOS of the others: unbounded likelihood without the rounding floor.
    others = ratings[ratings["rater"] != "r05"].groupby("stimulus")["score"].mean().round()
    perfect = ratings["rater"] == "r05"
    ratings.loc[perfect, "score"] = ratings.loc[perfect, "stimulus"].map(others).to_numpy()
    per_stimulus, per_rater = subject_model(ratings)
    assert len(per_stimulus) == ratings["stimulus"].nunique() and len(per_rater) == 6
    assert per_rater.set_index("rater").loc["r05", "inconsistency"] == pytest.approx(ROUNDING_SD)
    assert (per_stimulus["quality_ci_low"] < per_stimulus["quality"]).all()
    assert (per_stimulus["quality_se"] > 0.05).all()
    assert per_rater["bias"].sum() == pytest.approx(0.0, abs=1e-9)
    # P.913: bias-removed scores average zero bias, and the bias-removed MOS is what quality.csv reports.
    removed = bias_removed(ratings)
    assert removed.groupby("stimulus")["score"].mean().to_numpy() == pytest.approx(
        per_stimulus.set_index("stimulus")["mos_p913"].sort_index().to_numpy()
    )


# --- reliability --------------------------------------------------------------------------------------------


def test_krippendorff_alpha_worked_example() -> None:
    """Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", §C: 4 observers × 12 units with missing
    values; published α = 0.743 (nominal), 0.815 (ordinal), 0.849 (interval), 0.797 (ratio), to 3 decimals."""
    nan = math.nan
    observers = np.array([
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ])  # fmt: skip
    units = list(observers.T)
    published = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}
    for level, value in published.items():
        assert krippendorff_alpha(units, level) == pytest.approx(value, abs=5e-4), level  # type: ignore[arg-type]
    assert krippendorff_alpha([[1, 1], [2, 2], [3, 3]]) == 1.0
    assert math.isnan(krippendorff_alpha([[1], [2]]))


def test_icc_shrout_fleiss_worked_example() -> None:
    """Shrout & Fleiss (1979), Table 2 (6 targets × 4 judges) and Table 4: ICC(2,1) = 0.29, ICC(2,4) = 0.62."""
    table = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    single, average = icc2(table)
    assert (single, average) == pytest.approx((0.29, 0.62), abs=5e-3)
    # Spearman–Brown links them: ICC(2,k) = k·ICC(2,1) / (1 + (k − 1)·ICC(2,1)).
    assert average == pytest.approx(4 * single / (1 + 3 * single), abs=1e-12)


def test_complete_block_and_retest_by_hand() -> None:
    matrix = pd.DataFrame({"a": [1, 2, 3, 4], "b": [1, np.nan, 3, 4], "c": [np.nan, np.nan, np.nan, 1]})
    assert complete_block(matrix).shape == (3, 2)
    rows = [("a", "s1", 1, 1), ("a", "s1", 2, 1), ("a", "s2", 1, 2), ("a", "s2", 2, 3), ("a", "s3", 1, 4),
            ("a", "s3", 2, 4), ("b", "s1", 1, 5)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["rater", "stimulus", "repetition", "score"]).assign(
        method="m", dataset="d", image=lambda f: f["stimulus"]
    )
    retest = retest_by_rater(validate_ratings(frame)).set_index("rater")
    assert retest.loc["a", "retest_n"] == 3 and retest.loc["a", "retest_mad"] == pytest.approx(1 / 3)
    assert retest.loc["a", "retest_r"] == pytest.approx(np.corrcoef([1, 2, 4], [1, 3, 4])[0, 1])
    assert retest.loc["b", "retest_n"] == 0 and math.isnan(retest.loc["b", "retest_r"])


# --- ranks, correlation -------------------------------------------------------------------------------------


def test_average_ranks_by_hand() -> None:
    rows = [("r1", "x", "a", 5), ("r1", "x", "b", 3), ("r1", "x", "c", 3), ("r2", "x", "a", 2), ("r2", "x", "b", 4),
            ("r2", "x", "c", 1), ("r3", "x", "a", 4)]  # fmt: skip  # r3 did not score b, c: not a complete block
    frame = pd.DataFrame(rows, columns=["rater", "image", "method", "score"]).assign(dataset="d")
    ranks = rank_table(validate_ratings(frame)).set_index("method")
    # r1: a 1, b 2.5, c 2.5; r2: b 1, a 2, c 3.
    assert ranks["mean_rank"].to_dict() == {"a": 1.5, "b": 1.75, "c": 2.75}
    assert (ranks["n_blocks"] == 2).all() and (ranks["n_methods"] == 3).all()


def test_correlations_after_the_logistic_mapping() -> None:
    x = np.linspace(20, 34, 30)
    mos = logistic4(x, 4.6, 1.2, 27.0, 2.0)
    result = correlate(x, mos)
    assert result["fit"] == "logistic4" and result["srocc"] == 1.0 and result["krocc"] == 1.0
    assert result["plcc"] == pytest.approx(1.0, abs=1e-9) and result["plcc_linear"] < 0.99  # type: ignore[operator]
    falling = correlate(-x, mos + np.random.default_rng(0).normal(0, 0.05, x.size))  # lower is better
    assert falling["srocc"] < -0.95 and falling["plcc"] > 0.99  # type: ignore[operator]
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=25), rng.normal(size=25)
    mixed = correlate(a, b)
    assert mixed["srocc"] == pytest.approx(stats.spearmanr(a, b).statistic)
    assert mixed["krocc"] == pytest.approx(stats.kendalltau(a, b).statistic)
    assert mixed["plcc_linear"] == pytest.approx(stats.pearsonr(a, b).statistic)
    assert correlate(a[:4], b[:4])["fit"] == "linear"


def test_correlation_table_joins_on_method_dataset_image() -> None:
    per_image = pd.DataFrame({"method": ["m1", "m2"] * 4, "dataset": ["d"] * 8,
                              "image": [f"i{k // 2}" for k in range(8)], "mos": np.arange(8.0)})  # fmt: skip
    values = per_image.rename(columns={"mos": "value"}).assign(metric="psnr", value=lambda f: f["value"] * 2)
    values = pd.concat([values, values.assign(dataset="other", metric="psnr")])  # does not join
    table = correlation_table(per_image, values)
    assert list(table["dataset"]) == ["all"] and table["n"].iloc[0] == 8 and table["srocc"].iloc[0] == 1.0


# --- ratings input ------------------------------------------------------------------------------------------


def test_ratings_are_checked_with_clear_messages(tmp_path: Path) -> None:
    good = {"rater": "a", "stimulus": "s", "method": "m", "dataset": "d", "image": "i", "repetition": 1, "score": 3}

    def error(rows: list[dict[str, Any]], **kwargs: Any) -> str:
        with pytest.raises(SrevalError) as caught:
            validate_ratings(pd.DataFrame(rows), **kwargs)
        return str(caught.value)

    assert "missing column(s) score" in error([{k: v for k, v in good.items() if k != "score"}])
    assert "outside the scale 1..5" in error([good, {**good, "stimulus": "t", "score": 7}]) and "line 3" in error(
        [good, {**good, "stimulus": "t", "score": 7}])  # fmt: skip
    assert "must be a number" in error([{**good, "score": "good"}])
    assert "more than once" in error([good, good])
    assert "repetition must be an integer" in error([{**good, "repetition": 0}])
    assert "different method" in error([good, {**good, "rater": "b", "method": "other"}])
    assert "kind 'bogus'" in error([{**good, "kind": "bogus"}])
    assert validate_ratings(pd.DataFrame([{**good, "score": 70}]), scale=None)["score"].iloc[0] == 70
    assert parse_scale("0,100") == (0, 100) and parse_scale("any") is None
    with pytest.raises(SrevalError, match="MIN,MAX"):
        parse_scale("5")
    with pytest.raises(SrevalError, match="does not exist"):
        read_ratings_csv(tmp_path / "nope.csv")

    minimal = pd.DataFrame([{"rater": 1, "method": "m", "dataset": "d", "image": "i", "score": 4, "extra": "x"}])
    minimal.to_csv(tmp_path / "minimal.csv", index=False)
    read = read_ratings_csv(tmp_path / "minimal.csv")
    assert read.iloc[0].to_dict() == {
        "rater": "1",
        "stimulus": "m/d/i",
        "method": "m",
        "dataset": "d",
        "image": "i",
        "repetition": 1,
        "score": 4.0,
        "kind": "test",
        "simulated": False,
    }


def test_selection_leaves_out_gold_calibration_and_simulated() -> None:
    base = {"method": "m", "dataset": "d", "image": "i", "repetition": 1}
    rows = [
        {**base, "rater": "a", "stimulus": "t1", "score": 3, "kind": "test", "simulated": False},
        {**base, "rater": "a", "stimulus": "g1", "method": "hr", "score": 2, "kind": "gold_hr", "simulated": False},
        {**base, "rater": "a", "stimulus": "g2", "method": "nn", "score": 1, "kind": "gold_nn", "simulated": False},
        {**base, "rater": "a", "stimulus": "c1", "method": "hr", "dataset": "calibration", "score": 5,
         "kind": "calibration_hr", "simulated": False},
        {**base, "rater": "sim", "stimulus": "t1", "score": 4, "kind": "test", "simulated": True},
    ]  # fmt: skip
    ratings = validate_ratings(pd.DataFrame(rows))
    assert list(select_ratings(ratings)["stimulus"]) == ["t1"]
    assert set(select_ratings(ratings, include_gold=True)["stimulus"]) == {"t1", "g1", "g2"}
    assert set(select_ratings(ratings, include_calibration=True)["stimulus"]) == {"t1", "c1"}
    assert list(select_ratings(ratings, include_simulated=True)["rater"]) == ["a", "sim"]
    assert gold_failures(ratings).to_dict() == {"a": 1.0, "sim": 0.0}  # gold HR rated 2 is a failure
    with pytest.raises(SrevalError, match="simulated raters are left out"):
        select_ratings(ratings[ratings["simulated"]])


# --- power --------------------------------------------------------------------------------------------------


def test_power_grows_with_raters_and_delta_and_holds_alpha() -> None:
    common: dict[str, Any] = {"images": 10, "sims": 120, "seed": 1}
    assert simulated_power(6, delta=0.0, **common) <= 0.06  # right-direction rejections under H0: about α/2
    weak, strong = simulated_power(3, delta=0.2, **common), simulated_power(12, delta=0.2, **common)
    assert weak < strong
    assert simulated_power(3, delta=0.6, **common) > weak
    mos_pairs = simulated_power(6, delta=0.3, pairing="image-mos", **common)
    assert 0 < mos_pairs < 1

    result = raters_needed(0.3, images=10, sims=60, seed=2)
    assert result.n_raters is not None
    curve = result.curve.set_index("n_raters")["power"]
    assert curve[result.n_raters] >= 0.8 and all(curve[n] < 0.8 for n in curve.index if n < result.n_raters)
    assert raters_needed(0.3, images=10, sims=60, seed=2).curve.equals(result.curve)  # seeded
    hopeless = raters_needed(0.05, images=2, sims=20, max_raters=4, pairing="image-mos")
    assert hopeless.n_raters is None and list(hopeless.curve["n_raters"]) == [2, 4]
    with pytest.raises(SrevalError, match="--delta"):
        raters_needed(0.0)


def test_pilot_rater_model() -> None:
    model = rater_model_from_ratings(synthetic_study(raters=8, images=4), "pilot")
    assert len(model.inconsistencies) == 8 and 0.1 < model.bias_sd < 0.8 and "8 raters" in model.source
    rng = np.random.default_rng(0)
    _, upsilon = model.draw(rng, (1000,))
    assert set(np.round(upsilon, 12)) <= set(np.round(model.inconsistencies, 12))
    assert RaterModel().draw(rng, (5,))[1].min() >= 0.05


# --- the pipeline and the CLI -------------------------------------------------------------------------------

EXPECTED_FILES = ["mos.csv", "wilcoxon.csv", "raters.csv", "reliability.csv", "ranks.csv", "quality.csv"]


def test_analyze_cli_on_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings = synthetic_study(raters=8, images=5, seed=5)
    ratings.drop(columns=["kind", "simulated"]).to_csv(tmp_path / "ratings.csv", index=False)
    out = tmp_path / "out"
    assert main(["analyze", "--ratings", str(tmp_path / "ratings.csv"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "MOS with 95 % CI (t)" in printed and "hr" in printed and "correlation.csv: skipped" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPECTED_FILES)

    mos = pd.read_csv(out / "mos.csv")
    assert list(mos.columns) == ["method", "dataset", "mos", "ci_low", "ci_high", "n_ratings", "n_raters"]
    assert len(mos) == 8
    tests = pd.read_csv(out / "wilcoxon.csv")
    assert list(tests.columns[:9]) == ["dataset", "method_a", "method_b", "n_pairs", "statistic", "p", "p_holm",
                                       "effect_size", "significant"]  # fmt: skip
    raters = pd.read_csv(out / "raters.csv")
    assert list(raters.columns[:8]) == ["rater", "n", "rejected_bt500", "bias", "inconsistency", "retest_r",
                                        "retest_mad", "gold_failures"]  # fmt: skip
    assert raters["rejected_bt500"].dtype == bool and raters["gold_failures"].isna().all()
    reliability = pd.read_csv(out / "reliability.csv").set_index("measure")["value"]
    assert list(reliability.index) == ["test_retest_r", "test_retest_mad", "icc_2_1", "icc_2_k",
                                       "krippendorff_alpha_ordinal"]  # fmt: skip
    assert 0.5 < reliability["icc_2_k"] <= 1 and 0.3 < reliability["krippendorff_alpha_ordinal"] < 1
    ranks = pd.read_csv(out / "ranks.csv")
    assert ranks.groupby("dataset")["method"].first().tolist() == ["hr", "hr"]

    boot = tmp_path / "boot"
    args = ["analyze", "--ratings", str(tmp_path / "ratings.csv"), "--out", str(boot), "--ci", "bootstrap",
            "--bootstrap", "200", "--pairing", "image-mos", "--correction", "bh"]  # fmt: skip
    assert main(args) == 0
    assert "bootstrap over raters and images" in capsys.readouterr().out
    assert (pd.read_csv(boot / "wilcoxon.csv")["n_pairs"] == 5).all()  # one pair per image

    assert main(["analyze", "--ratings", str(tmp_path / "ratings.csv")]) == 2
    assert "needs --out" in capsys.readouterr().err
    assert main(["analyze", "--out", str(out)]) == 2
    assert "--ratings FILE.csv or --study NAME" in capsys.readouterr().err
    (tmp_path / "bad.csv").write_text("rater,method,dataset,image,score\na,m,d,i,9\na,n,d,i,2\nb,m,d,i,8\nb,n,d,i,3\n")
    assert main(["analyze", "--ratings", str(tmp_path / "bad.csv"), "--out", str(out)]) == 2
    assert "outside the scale 1..5" in capsys.readouterr().err
    assert main(["analyze", "--ratings", str(tmp_path / "bad.csv"), "--out", str(out), "--scale", "0,10"]) == 0


def test_analyze_power_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "power", "--delta", "0.5", "--images", "10", "--sims", "40"]) == 0
    printed = capsys.readouterr().out
    assert "raters needed for power 0.8:" in printed and "bias SD 0.500" in printed
    synthetic_study(raters=6, images=4).to_csv(tmp_path / "pilot.csv", index=False)
    args = ["analyze", "power", "--delta", "0.5", "--from-ratings", str(tmp_path / "pilot.csv"), "--images", "10",
            "--sims", "40", "--pairing", "image-mos"]  # fmt: skip
    assert main(args) == 0
    assert "pilot ratings" in capsys.readouterr().out
    assert main(["analyze", "--out", str(tmp_path), "power", "--delta", "0.5"]) == 2
    assert "belong to `sreval analyze`" in capsys.readouterr().err
    assert main(["analyze", "power", "--delta", "-1"]) == 2


def make_study(url: str, folder: Path) -> None:
    """A hand-made study: 3 methods × 4 Set5 images, 1 gold image, 2 calibration images, retest 25 %."""
    images = ["baby", "bird", "butterfly", "head"]
    stimuli = [
        DraftStimulus(f"stim{method}{image}".ljust(16, "0")[:16], "test", method, "set5", image, "", None)
        for method in ("nn", "bicubic", "srgan") for image in images
    ]  # fmt: skip
    stimuli += [DraftStimulus("goldhrbaby000000", "gold_hr", None, "set5", "baby", "", 5),
                DraftStimulus("goldnnbaby000000", "gold_nn", None, "set5", "baby", "", 1)]  # fmt: skip
    stimuli += [DraftStimulus(f"cal{kind}{i}".ljust(16, "0"), f"calibration_{kind}", None, "calibration", f"c{i}.png",
                              "", 5 if kind == "hr" else 1) for kind in ("hr", "nn") for i in range(2)]  # fmt: skip
    stimuli = [dataclasses.replace(s, path=f"{s.public_id}.png") for s in stimuli]
    for s in stimuli:
        save_png(folder / s.path, np.zeros((8, 8, 3), np.uint8))
    draft = StudyDraft(
        "pilot", folder, 3, {"retest": 0.25, "min_retest_gap": 2},
        [DraftMethod(m, {}) for m in ("nn", "bicubic", "srgan")],
        [DraftImage("set5", image, "0" * 64) for image in images]
        + [DraftImage("calibration", f"c{i}.png", "1" * 64) for i in range(2)],
        stimuli,
    )  # fmt: skip
    with open_study_store(url) as store:
        store.create_study(draft)
        simulate(store, "pilot", raters=6, workers=2, seed=4)


def test_analyze_cli_on_a_simulated_study_with_metric_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    make_study(url, tmp_path / "stimuli")
    when = pd.Timestamp("2026-01-01T00:00:00Z").to_pydatetime()
    methods = ("nn", "bicubic", "srgan")
    images = ("baby", "bird", "butterfly", "head")
    level = {"nn": 20.0, "bicubic": 24.0, "srgan": 27.0}
    run = RunRecord(
        "test", when, when, "0.1.0", None, {}, "cpu", {}, {},
        [MethodRecord(m, m, {}) for m in methods], [ImageRecord("set5", i, "0" * 64) for i in images],
        [ValueRecord(m, "set5", i, "psnr", level[m] + k) for m in methods for k, i in enumerate(images)],
    )  # fmt: skip
    with open_store(url) as store:
        run_id = store.save_run(run)

    out = tmp_path / "out"
    assert main(["analyze", "--study", "pilot", "--db", url, "--out", str(out)]) == 2
    assert "simulated raters are left out" in capsys.readouterr().err
    args = ["analyze", "--study", "pilot", "--db", url, "--out", str(out), "--include-simulated"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"correlation.csv: metric values of run(s) {run_id}" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPECTED_FILES, "correlation.csv"])
    mos = pd.read_csv(out / "mos.csv").set_index("method")
    assert set(mos.index) == set(methods) and (mos["n_raters"] == 6).all()
    assert mos.loc["srgan", "mos"] > mos.loc["nn", "mos"]  # simulate: other methods 3.0, nn 1.3
    raters = pd.read_csv(out / "raters.csv")
    assert len(raters) == 6 and raters["gold_failures"].notna().all() and (raters["retest_n"] == 3).all()
    correlation = pd.read_csv(out / "correlation.csv")
    assert list(correlation["metric"]) == ["psnr"] and correlation["n"].iloc[0] == 12
    assert correlation["srocc"].iloc[0] > 0.5

    with_gold = tmp_path / "gold"
    assert main([*args[:-1], "--include-simulated", "--include-gold", "--include-calibration", "--out",
                 str(with_gold)]) == 0  # fmt: skip
    assert {"hr", "nn"} <= set(pd.read_csv(with_gold / "mos.csv")["method"])
    assert "calibration" in set(pd.read_csv(with_gold / "mos.csv")["dataset"])

    with open_study_store(url) as study_store:
        pilot = select_ratings(validate_ratings(study_store.ratings("pilot")), include_simulated=True)
    model = rater_model_from_ratings(pilot, "pilot")  # what `analyze power --from-study` does
    assert len(model.inconsistencies) == 6
    assert main(["analyze", "power", "--delta", "0.5", "--from-study", "pilot", "--db", url, "--include-simulated",
                 "--images", "8", "--sims", "30"]) == 0  # fmt: skip
    assert "pilot study pilot (6 raters)" in capsys.readouterr().out


def test_analyze_library_api() -> None:
    ratings = synthetic_study(raters=6, images=4)
    result = analyze(ratings, AnalysisOptions(pairing="image-mos", alpha=0.01))
    assert result.correlation is None and set(result.tables()) == set(EXPECTED_FILES)
    assert len(result.raters) == 6 and not result.raters["rejected_bt500"].any()
    assert len(result.quality) == ratings["stimulus"].nunique()

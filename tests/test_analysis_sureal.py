"""Rater screening and subject models: BT.500 observer screening (`screening`), the P.910 / SUREAL model and
P.913 bias removal (`sureal`), against hand-made examples and SUREAL's published values: its demo outputs and
unit-test values on the Netflix public dataset (`ratings/sureal` of the shared data, beside the benchmarks of
SREVAL_DATA_ROOT).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analysis_helpers import synthetic_study
from scipy import stats

from sreval.analysis import validate_ratings
from sreval.analysis.screening import bt500_screen, screen_raters
from sreval.analysis.sureal import ROUNDING_SD, bias_removed, fit_p910, p913_bias, subject_model
from sreval.cli import main


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

# --- BT.500 screening ----------------------------------------------------------------------------------------

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

# --- P.910 / SUREAL model and P.913 --------------------------------------------------------------------------

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

"""Subject models: the P.910 / SUREAL maximum-likelihood model and P.913 bias removal.

P.910 model (ITU-T P.910 (11/2021) Annex E, also P.913 (06/2021) §12.6; Li & Bampis, "Recover subjective quality
scores from noisy measurements", DCC 2017, and Li et al., "A simple model for subject behavior in subjective
experiments", HVEI 2020 — Netflix SUREAL's `MLE_CO` model): the score of rater i on stimulus j (repetition r) is

    o_ijr = ψ_j + Δ_i + υ_i · X,   X ~ N(0, 1),

with ψ_j the stimulus's quality, Δ_i the rater's bias and υ_i ≥ 0 the rater's inconsistency. The
log-likelihood Σ log φ((o − ψ_j − Δ_i) / υ_i) − log υ_i is maximised by block coordinate ascent; each update is
the exact maximiser of one block given the others, so the likelihood never decreases:

    υ_i ← √(mean over i's scores of (o − ψ_j − Δ_i)²)
    ψ_j ← Σ_i (o − Δ_i) / υ_i² / Σ_i 1 / υ_i²          (over the scores of stimulus j)
    Δ_i ← mean over i's scores of (o − ψ_j)

until no ψ_j moves by more than `tol`. These are the updates of P.910's alternating projection (the `demo_p910.py`
/ `demo_bt500.py` reference code of SUREAL, whose published outputs the tests reproduce), whose fixed point
is the maximum-likelihood estimate. The model fixes ψ + Δ only; as P.910 does, the result is shifted so that
the biases average to zero over raters.

The likelihood has no maximum when one rater's scores fit ψ + Δ_i exactly (υ_i → 0 and that rater takes all the
weight), which on a 5-point scale is not rare for a consistent rater with few ratings. Scores on a category scale
are rounded, and rounding alone is an error of SD step/√12 (0.289 for step 1), so `subject_model` bounds every
υ_i below by that (`min_inconsistency`; the fit is then the maximum under the constraint, still a monotone
ascent: each υ update is the constrained maximiser). For scores that are not all integers, and in `fit_p910`
by default, the bound is √ε with ε = `VARIANCE_FLOOR`, the reference code's ε (it never binds on the SUREAL data).

Standard errors come from the Fisher information at the estimate, one parameter at a time (the diagonal, as
SUREAL reports them): SE(ψ_j) = 1/√(Σ_i 1/υ_i²), SE(Δ_i) = υ_i/√n_i, SE(υ_i) = υ_i/√(2 n_i); confidence
intervals are estimate ± z · SE. The reference code's "SOS" (the residual standard deviation of stimulus j over
√n_j) is reported as `sos`.

P.913 bias removal (ITU-T P.913 (06/2021) §12.4, SUREAL's `BiasremvMosModel`): a rater's bias is the mean over
the stimuli they rated of (their score − the stimulus's MOS); it is subtracted from their scores before the MOS
is taken again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import stats

from sreval.errors import ParameterError, SrevalError

#: Smallest υ² used as a weight (the ε of SUREAL's reference code).
VARIANCE_FLOOR = 1e-8
#: Smallest inconsistency for integer scores: the SD of a rounding error, 1/√12.
ROUNDING_SD = 1 / 12**0.5
#: Columns of the per-stimulus table of `subject_model`.
STIMULUS_COLUMNS = (
    "method", "dataset", "image", "stimulus", "n_ratings", "mos", "mos_p913", "quality", "quality_se",
    "quality_ci_low", "quality_ci_high", "sos",
)  # fmt: skip


@dataclass(frozen=True)
class P910Fit:
    """Maximum-likelihood estimates of the P.910 model: per stimulus (j) and per rater (i)."""

    quality: NDArray[np.float64]  # ψ_j
    quality_se: NDArray[np.float64]
    sos: NDArray[np.float64]  # residual SD of stimulus j / √n_j (the reference code's SOS)
    bias: NDArray[np.float64]  # Δ_i, averaging zero
    bias_se: NDArray[np.float64]
    inconsistency: NDArray[np.float64]  # υ_i
    inconsistency_se: NDArray[np.float64]
    log_likelihood: float
    iterations: int
    converged: bool


def _as_3d(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    o = np.asarray(scores, dtype=np.float64)
    if o.ndim == 2:
        o = o[:, :, None]
    if o.ndim != 3:
        raise ParameterError("scores", f"scores must be stimuli × raters (× repetitions), got shape {o.shape}")
    return o


def fit_p910(
    scores: NDArray[np.float64],
    *,
    min_inconsistency: float | None = None,
    tol: float = 1e-8,
    max_iter: int = 10_000,
) -> P910Fit:
    """Fit the P.910 model to a stimuli × raters (× repetitions) array, NaN = not rated.

    Every stimulus needs a score and every rater at least two. υ_i ≥ `min_inconsistency` (default √ε)."""
    floor = VARIANCE_FLOOR if min_inconsistency is None else max(min_inconsistency**2, VARIANCE_FLOOR)
    o = _as_3d(scores)
    rated = ~np.isnan(o)
    per_rater = rated.sum(axis=(0, 2))
    per_stimulus = rated.sum(axis=(1, 2))
    if (per_stimulus == 0).any():
        raise SrevalError(f"P.910 model: stimulus {int(np.argmax(per_stimulus == 0))} has no score")
    if (per_rater < 2).any():
        raise SrevalError(f"P.910 model: rater {int(np.argmax(per_rater < 2))} has fewer than two scores")
    count_w = rated.sum(axis=2)  # J × I: scores of rater i on stimulus j

    def stimulus_mean(values: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
        sums = np.nansum(values, axis=2)  # J × I
        return np.asarray((sums * weights[None, :]).sum(axis=1) / (count_w * weights[None, :]).sum(axis=1))

    psi = np.asarray(np.nanmean(o.reshape(o.shape[0], -1), axis=1))
    delta = np.asarray(np.nanmean((o - psi[:, None, None]).transpose(1, 0, 2).reshape(o.shape[1], -1), axis=1))
    converged, iterations = False, 0
    while iterations < max_iter:
        iterations += 1
        residual = o - psi[:, None, None] - delta[None, :, None]
        variance = np.nansum(residual**2, axis=(0, 2)) / per_rater
        weights = 1.0 / np.maximum(variance, floor)
        new_psi = stimulus_mean(o - delta[None, :, None], weights)
        delta = np.nansum(o - new_psi[:, None, None], axis=(0, 2)) / per_rater
        step = float(np.max(np.abs(new_psi - psi)))
        psi = new_psi
        if step < tol:
            converged = True
            break

    residual = o - psi[:, None, None] - delta[None, :, None]
    variance = np.maximum(np.nansum(residual**2, axis=(0, 2)) / per_rater, floor)
    upsilon = np.sqrt(variance)
    shift = float(delta.mean())
    delta, psi = delta - shift, psi + shift
    log_likelihood = float(np.nansum(stats.norm.logpdf(residual, scale=upsilon[None, :, None])))
    quality_se = 1.0 / np.sqrt((count_w / variance[None, :]).sum(axis=1))
    stimulus_sd = np.sqrt(np.nansum(residual**2, axis=(1, 2)) / per_stimulus - (
        np.nansum(residual, axis=(1, 2)) / per_stimulus) ** 2)  # fmt: skip
    return P910Fit(
        quality=psi,
        quality_se=quality_se,
        sos=stimulus_sd / np.sqrt(per_stimulus),
        bias=delta,
        bias_se=upsilon / np.sqrt(per_rater),
        inconsistency=upsilon,
        inconsistency_se=upsilon / np.sqrt(2 * per_rater),
        log_likelihood=log_likelihood,
        iterations=iterations,
        converged=converged,
    )


def p913_bias(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """P.913 §12.4 bias of each rater (columns) of a stimuli × raters (× repetitions) array, NaN = not rated."""
    o = _as_3d(scores)
    mos = np.nanmean(o.reshape(o.shape[0], -1), axis=1)
    deviation = (o - mos[:, None, None]).transpose(1, 0, 2).reshape(o.shape[1], -1)
    return np.asarray(np.nanmean(deviation, axis=1))


def score_array(ratings: pd.DataFrame) -> tuple[NDArray[np.float64], pd.Index, pd.Index]:
    """A long ratings table as a stimuli × raters × repetitions array (NaN = not rated), with both indexes."""
    stimuli = pd.Index(sorted(ratings["stimulus"].unique()), name="stimulus")
    raters = pd.Index(sorted(ratings["rater"].unique()), name="rater")
    repetitions = int(ratings["repetition"].max())
    o = np.full((stimuli.size, raters.size, repetitions), np.nan)
    o[
        stimuli.get_indexer(ratings["stimulus"]),
        raters.get_indexer(ratings["rater"]),
        ratings["repetition"].to_numpy(np.int64) - 1,
    ] = ratings["score"].to_numpy(np.float64)
    return o, stimuli, raters


def subject_model(ratings: pd.DataFrame, *, confidence: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """P.910 and P.913 on a long ratings table.

    Returns (per stimulus: method, dataset, image, stimulus, n_ratings, mos, mos_p913, quality, quality_se,
    quality_ci_low, quality_ci_high, sos; per rater: rater, bias, bias_se, inconsistency, inconsistency_se,
    bias_p913). Raters with fewer than two ratings cannot be modelled: they are left out of the P.910 fit
    (NaN in their row). Integer scores bound the inconsistency below by `ROUNDING_SD`."""
    counts = ratings.groupby("rater")["score"].size()
    fitted = ratings[ratings["rater"].isin(counts.index[counts >= 2])]
    if fitted.empty:
        raise SrevalError("P.910 model: no rater has two or more ratings")
    o, stimuli, raters = score_array(fitted)
    integer = bool((fitted["score"] == np.round(fitted["score"])).all())
    fit = fit_p910(o, min_inconsistency=ROUNDING_SD if integer else None)
    if not 0 < confidence < 1:
        raise ParameterError("confidence", f"confidence must be in (0, 1), got {confidence}")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    o_all, stimuli_all, raters_all = score_array(ratings)
    bias_p913 = pd.Series(p913_bias(o_all), index=raters_all)
    mos_p913 = np.nanmean((o_all - bias_p913.to_numpy()[None, :, None]).reshape(o_all.shape[0], -1), axis=1)

    shown = ratings.drop_duplicates("stimulus").set_index("stimulus")[["method", "dataset", "image"]]
    per_stimulus = pd.DataFrame({
        "stimulus": stimuli_all,
        "n_ratings": ratings.groupby("stimulus")["score"].size().reindex(stimuli_all).to_numpy(),
        "mos": ratings.groupby("stimulus")["score"].mean().reindex(stimuli_all).to_numpy(),
        "mos_p913": mos_p913,
    }).set_index("stimulus")  # fmt: skip
    model = pd.DataFrame({
        "quality": fit.quality, "quality_se": fit.quality_se,
        "quality_ci_low": fit.quality - z * fit.quality_se, "quality_ci_high": fit.quality + z * fit.quality_se,
        "sos": fit.sos,
    }, index=stimuli)  # fmt: skip
    per_stimulus = shown.join(per_stimulus, how="right").join(model).rename_axis("stimulus").reset_index()
    per_stimulus = per_stimulus.loc[:, list(STIMULUS_COLUMNS)]
    per_stimulus = per_stimulus.sort_values(["dataset", "image", "method", "stimulus"]).reset_index(drop=True)

    per_rater = pd.DataFrame({
        "bias": fit.bias, "bias_se": fit.bias_se, "inconsistency": fit.inconsistency,
        "inconsistency_se": fit.inconsistency_se,
    }, index=raters).reindex(raters_all)  # fmt: skip
    per_rater["bias_p913"] = bias_p913
    if not fit.converged:
        raise SrevalError(f"P.910 model did not converge in {fit.iterations} iterations")
    return per_stimulus, per_rater.rename_axis("rater").reset_index()


def bias_removed(ratings: pd.DataFrame) -> pd.DataFrame:
    """The ratings with each rater's P.913 bias subtracted from their scores."""
    o, _, raters = score_array(ratings)
    bias = pd.Series(p913_bias(o), index=raters)
    out = ratings.copy()
    out["score"] = out["score"] - out["rater"].map(bias).to_numpy(np.float64)
    return out

"""How well each objective metric predicts the per-image MOS (`correlation.csv`).

Metric values come from runs of the results store (`sreval run-benchmarks`, `sreval evaluate`), one value per
method × dataset × image × metric, joined to the per-image MOS (every rating of that method on that image) on
(method, dataset, image). When several runs hold the same value, the later run (higher id) wins.

Per metric, over all joined images and per dataset:

* SROCC (Spearman's ρ) and KROCC (Kendall's τ-b), with their p-values (`scipy.stats`);
* PLCC after a 4-parameter logistic mapping (VQEG FR-TV Phase II final report, 2003; ITU-T P.1401 on
  mapping objective scores before computing PLCC): MOS ≈ (β₁ − β₂) / (1 + exp(−(x − β₃) / β₄)) + β₂, fitted
  by least squares (`scipy.optimize.curve_fit`, on standardised metric values, started from the data's range
  and the sign of ρ so that lower-is-better metrics fit too); PLCC is Pearson's r between the fitted and the
  observed MOS (so it is positive for a good metric of either direction), RMSE their RMS difference. With
  fewer than `MIN_LOGISTIC_POINTS` images, or when the fit fails, the mapping is linear (`fit` says which);
  `plcc_linear` is always Pearson's r of the raw values.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import optimize, stats

from sreval.errors import SrevalError

#: Fewest points for a 4-parameter logistic fit.
MIN_LOGISTIC_POINTS = 6
COLUMNS = (
    "metric", "dataset", "n", "srocc", "krocc", "plcc", "plcc_linear", "rmse", "srocc_p", "krocc_p", "fit",
)  # fmt: skip


def logistic4(x: NDArray[np.float64], b1: float, b2: float, b3: float, b4: float) -> NDArray[np.float64]:
    """VQEG's 4-parameter logistic: (b1 − b2) / (1 + exp(−(x − b3) / b4)) + b2."""
    with np.errstate(over="ignore"):
        return np.asarray((b1 - b2) / (1.0 + np.exp(-(x - b3) / b4)) + b2)


def fit_logistic4(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Fitted values of the logistic mapping of x to y, or None when the fit fails."""
    spread = float(x.std())
    if x.size < MIN_LOGISTIC_POINTS or spread == 0 or float(y.std()) == 0:
        return None
    z = (x - x.mean()) / spread
    rho = stats.spearmanr(x, y).statistic
    high, low = float(y.max()), float(y.min())
    start = [high, low, 0.0, 1.0] if not rho < 0 else [low, high, 0.0, 1.0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(logistic4, z, y, p0=start, maxfev=20_000)
    except (RuntimeError, ValueError):
        return None
    fitted = logistic4(z, *params)
    return fitted if np.isfinite(fitted).all() else None


def correlate(x: NDArray[np.float64], y: NDArray[np.float64]) -> dict[str, float | str | int]:
    """SROCC, KROCC, PLCC (logistic), PLCC (linear) and RMSE of metric values x against MOS y."""
    out: dict[str, float | str | int] = {"n": int(x.size)}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        out.update(
            srocc=math.nan,
            krocc=math.nan,
            plcc=math.nan,
            plcc_linear=math.nan,
            rmse=math.nan,
            srocc_p=math.nan,
            krocc_p=math.nan,
            fit="none",
        )
        return out
    spearman = stats.spearmanr(x, y)
    kendall = stats.kendalltau(x, y)
    linear = float(stats.pearsonr(x, y).statistic)
    fitted = fit_logistic4(x, y)
    fit = "logistic4"
    if fitted is None:
        slope, intercept = np.polyfit(x, y, 1)
        fitted, fit = slope * x + intercept, "linear"
    plcc = float(stats.pearsonr(fitted, y).statistic) if np.ptp(fitted) > 0 else math.nan
    out.update(
        srocc=float(spearman.statistic), krocc=float(kendall.statistic), plcc=plcc, plcc_linear=linear,
        rmse=float(np.sqrt(np.mean((fitted - y) ** 2))), srocc_p=float(spearman.pvalue),
        krocc_p=float(kendall.pvalue), fit=fit,
    )  # fmt: skip
    return out


def correlation_table(per_image_mos: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """Correlations of every metric with the per-image MOS (`COLUMNS`): over all images (dataset `all`) and per
    dataset. `per_image_mos` has method, dataset, image, mos; `values` method, dataset, image, metric, value."""
    missing = {"method", "dataset", "image", "metric", "value"} - set(values.columns)
    if missing:
        raise SrevalError(f"metric values need columns {', '.join(sorted(missing))}")
    joined = per_image_mos.merge(values, on=["method", "dataset", "image"], how="inner")
    joined = joined[np.isfinite(joined["value"].to_numpy(np.float64))]
    rows = []
    for metric, part in joined.groupby("metric", sort=True):
        scopes: list[tuple[str, pd.DataFrame]] = [("all", part)]
        if part["dataset"].nunique() > 1:
            scopes += [(str(d), g) for d, g in part.groupby("dataset", sort=True)]
        for scope, group in scopes:
            result = correlate(group["value"].to_numpy(np.float64), group["mos"].to_numpy(np.float64))
            rows.append({"metric": metric, "dataset": scope, **result})
    return pd.DataFrame(rows, columns=list(COLUMNS))

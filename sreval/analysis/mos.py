"""Mean opinion scores per method and dataset, with 95 % confidence intervals (`mos.csv`).

MOS = mean of every rating of the method on the dataset (a retest's second rating counts as a rating).

* `ci="t"` (default): MOS ± t(1 − α/2, N − 1) · S / √N over the N ratings, S the sample standard deviation:
  the interval of ITU-R BT.500-14 Annex 1 §2.2 (which writes 1.96 for the quantile) with Student's t quantile,
  as ITU-T P.800.2 recommends for small samples. It treats the N ratings as independent, which they are not
  quite: the same raters rate every image, and images differ. With few raters or few images it is too narrow.
* `ci="bootstrap"`: a two-way (crossed) cluster bootstrap that resamples raters and images with replacement,
  independently (the "pigeonhole" bootstrap, Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)),
  so that both sources of variation are in the interval; percentile interval over `n_boot` replicates. A
  replicate's MOS is the mean of the ratings of the drawn raters on the drawn images, each counted as often as
  its rater and its image were drawn. Raters are drawn once per replicate for every dataset and method; images
  per dataset. Seeded: the same data and seed give the same interval.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from sreval.errors import ParameterError

CiMethod = Literal["t", "bootstrap"]
CI_METHODS: tuple[CiMethod, ...] = ("t", "bootstrap")
COLUMNS = ("method", "dataset", "mos", "ci_low", "ci_high", "n_ratings", "n_raters")
#: Fewer replicates make the percentile interval's ends too noisy to report.
MIN_BOOTSTRAP_REPLICATES = 100


def check_n_boot(n_boot: int) -> None:
    """Refuse a bootstrap of fewer than `MIN_BOOTSTRAP_REPLICATES` replicates."""
    if n_boot < MIN_BOOTSTRAP_REPLICATES:
        raise ParameterError("n_boot", f"n_boot must be at least {MIN_BOOTSTRAP_REPLICATES}, got {n_boot}")


def t_interval(scores: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of `scores` (NaN for fewer than two scores)."""
    n = scores.size
    if n < 2:
        return math.nan, math.nan
    mean = float(scores.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(scores.std(ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


def _bootstrap(
    ratings: pd.DataFrame, confidence: float, n_boot: int, seed: int
) -> dict[tuple[str, str], tuple[float, float]]:
    rng = np.random.default_rng(seed)
    raters = np.array(sorted(ratings["rater"].unique()))
    # Rater weights: how often each rater is drawn, per replicate (shared by every dataset and method).
    rater_weights = rng.multinomial(raters.size, np.full(raters.size, 1 / raters.size), size=n_boot).astype(float)
    rater_index = {r: i for i, r in enumerate(raters)}
    low_q, high_q = 50 * (1 - confidence), 50 * (1 + confidence)
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for dataset, part in ratings.groupby("dataset", sort=True):
        images = np.array(sorted(part["image"].unique()))
        image_index = {im: i for i, im in enumerate(images)}
        image_weights = rng.multinomial(images.size, np.full(images.size, 1 / images.size), size=n_boot).astype(float)
        for method, group in part.groupby("method", sort=True):
            r = group["rater"].map(rater_index).to_numpy()
            i = group["image"].map(image_index).to_numpy()
            sums = np.zeros((raters.size, images.size))
            counts = np.zeros((raters.size, images.size))
            np.add.at(sums, (r, i), group["score"].to_numpy(np.float64))
            np.add.at(counts, (r, i), 1.0)
            numerator = np.einsum("br,ri,bi->b", rater_weights, sums, image_weights)
            denominator = np.einsum("br,ri,bi->b", rater_weights, counts, image_weights)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = numerator / denominator  # 0/0: no drawn rater rated a drawn image: replicate left out
            means = means[np.isfinite(means)]
            if means.size < 2:
                out[str(method), str(dataset)] = (math.nan, math.nan)
            else:
                out[str(method), str(dataset)] = (
                    float(np.percentile(means, low_q)),
                    float(np.percentile(means, high_q)),
                )
    return out


def mos_table(
    ratings: pd.DataFrame,
    *,
    ci: CiMethod = "t",
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """MOS and confidence interval per method and dataset (`COLUMNS`), sorted by dataset then MOS (best first)."""
    if ci not in CI_METHODS:
        raise ParameterError("ci", f"ci must be one of {', '.join(CI_METHODS)}, not {ci!r}")
    if not 0 < confidence < 1:
        raise ParameterError("confidence", f"confidence must be in (0, 1), got {confidence}")
    if ci == "bootstrap":
        check_n_boot(n_boot)
    boot = _bootstrap(ratings, confidence, n_boot, seed) if ci == "bootstrap" else {}
    rows = []
    for (method, dataset), group in ratings.groupby(["method", "dataset"], sort=True):
        scores = group["score"].to_numpy(np.float64)
        low, high = boot[str(method), str(dataset)] if ci == "bootstrap" else t_interval(scores, confidence)
        rows.append({
            "method": method, "dataset": dataset, "mos": float(scores.mean()), "ci_low": low, "ci_high": high,
            "n_ratings": scores.size, "n_raters": group["rater"].nunique(),
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table = table.sort_values(["dataset", "mos", "method"], ascending=[True, False, True], kind="stable")
    return table.reset_index(drop=True)


def image_mos(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per-image MOS: method, dataset, image, mos, n_ratings (every rating, repetitions included)."""
    grouped = ratings.groupby(["method", "dataset", "image"], sort=True)["score"]
    return grouped.agg(mos="mean", n_ratings="size").reset_index()

"""How many raters a study needs: power of the Wilcoxon comparison of two methods, by simulation.

A simulated study: `images` images, every rater scores both methods on every image. Image i has a true
quality q_i ~ N(`quality`, `quality_sd`) with method A and q_i + δ + e_i with method B (δ = `delta`, on the
rating scale; e_i ~ N(0, `interaction_sd`) lets the difference vary from image to image, default 0). Raters
and their scores follow `sreval.study.rater_model`, the model the simulated raters of a study follow too: the
P.910 / SUREAL model (`sureal.py`) with the rounding and clipping of a category scale.

Rater parameters come from the model's defaults (bias SD 0.5, υ = |N(0, 0.5)| + 0.05) or from a pilot study:
the SD of the pilot's P.910 biases, and its raters' fitted inconsistencies, drawn with replacement (no
distribution assumed).

Each simulated study is tested with the two-sided Wilcoxon signed-rank test of `wilcoxon.py` (pairing
`rater-image` by default, or `image-mos`) at level `alpha`; the power is the share of studies where the
difference is significant in the right direction (B above A). Rater × image pairs are tested as if
independent, as `sreval analyze` does; with `interaction_sd` > 0 they are not (pairs of one image share e_i),
and `image-mos` pairing is the more honest design, whose power grows with images more than with raters.

`raters_needed` doubles the number of raters from `min_raters` until the power reaches `target`, then bisects
between the last two counts; every count is simulated with its own seeded stream (the same seed gives the same
answer), and a Monte Carlo standard error √(p(1 − p)/sims) is reported with each power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sreval.analysis.wilcoxon import PAIRINGS, Pairing, signed_rank_test
from sreval.errors import ParameterError, SrevalError
from sreval.study.rater_model import RaterModel, rate
from sreval.vocabulary import ACR_SCALE


def rater_model_from_ratings(ratings: pd.DataFrame, source: str) -> RaterModel:
    """Rater parameters of a pilot: SD of its P.910 biases and its fitted inconsistencies."""
    from sreval.analysis.sureal import subject_model

    _, raters = subject_model(ratings)
    raters = raters.dropna(subset=["bias", "inconsistency"])
    if len(raters) < 2:
        raise SrevalError(f"{source}: a pilot needs at least two raters with two or more ratings each")
    return RaterModel(
        bias_sd=float(raters["bias"].std(ddof=1)),
        inconsistencies=tuple(float(v) for v in raters["inconsistency"]),
        source=f"{source} ({len(raters)} raters)",
    )


@dataclass(frozen=True)
class PowerResult:
    """The smallest number of raters found with power ≥ target (None: not reached by `max_raters`)."""

    n_raters: int | None
    curve: pd.DataFrame  # n_raters, power, power_se: every count simulated, ascending
    delta: float
    target: float
    alpha: float
    images: int
    sims: int
    pairing: Pairing
    model: RaterModel = field(default_factory=RaterModel)


def simulated_power(
    n_raters: int,
    *,
    delta: float,
    images: int = 20,
    sims: int = 200,
    alpha: float = 0.05,
    model: RaterModel | None = None,
    quality: float = 3.0,
    quality_sd: float = 0.5,
    interaction_sd: float = 0.0,
    scale: tuple[float, float] = ACR_SCALE,
    pairing: Pairing = "rater-image",
    seed: int = 0,
) -> float:
    """Share of `sims` simulated studies with `n_raters` raters where B is significantly above A."""
    model = model or RaterModel()
    rng = np.random.default_rng([seed, n_raters])
    q = rng.normal(quality, quality_sd, (sims, 1, images))
    difference = delta + rng.normal(0.0, interaction_sd, (sims, 1, images)) if interaction_sd > 0 else delta
    bias, upsilon = model.draw(rng, (sims, n_raters, 1))
    noise = rng.normal(0.0, 1.0, (2, sims, n_raters, images))
    a = rate(q, bias, upsilon, noise[0], scale)
    b = rate(q + difference, bias, upsilon, noise[1], scale)
    hits = 0
    for k in range(sims):
        d = (b[k] - a[k]).ravel() if pairing == "rater-image" else b[k].mean(axis=0) - a[k].mean(axis=0)
        result = signed_rank_test(d)
        hits += int(result.p < alpha and result.w_plus > result.w_minus)
    return hits / sims


def raters_needed(
    delta: float,
    *,
    target: float = 0.8,
    alpha: float = 0.05,
    images: int = 20,
    sims: int = 200,
    model: RaterModel | None = None,
    pairing: Pairing = "rater-image",
    interaction_sd: float = 0.0,
    min_raters: int = 2,
    max_raters: int = 256,
    seed: int = 0,
) -> PowerResult:
    """Search the number of raters for power ≥ `target` (see the module docstring)."""
    if not delta > 0:
        raise ParameterError("delta", f"delta must be a positive MOS difference, got {delta}")
    if not 0 < target < 1:
        raise ParameterError("target", f"target must be in (0, 1), got {target}")
    if not 0 < alpha < 1:
        raise ParameterError("alpha", f"alpha must be in (0, 1), got {alpha}")
    if images < 2:
        raise ParameterError("images", f"images must be at least 2, got {images}")
    if sims < 10:
        raise ParameterError("sims", f"sims must be at least 10, got {sims}")
    if min_raters < 2:
        raise ParameterError("min_raters", f"min_raters must be at least 2, got {min_raters}")
    if max_raters < min_raters:
        raise ParameterError("max_raters", f"max_raters must be at least min_raters ({min_raters}), got {max_raters}")
    if pairing not in PAIRINGS:
        raise ParameterError("pairing", f"pairing must be one of {', '.join(PAIRINGS)}, not {pairing!r}")
    if interaction_sd < 0:
        raise ParameterError("interaction_sd", f"interaction_sd must not be negative, got {interaction_sd}")
    model = model or RaterModel()
    powers: dict[int, float] = {}

    def power(n: int) -> float:
        if n not in powers:
            powers[n] = simulated_power(
                n,
                delta=delta,
                images=images,
                sims=sims,
                alpha=alpha,
                model=model,
                pairing=pairing,
                interaction_sd=interaction_sd,
                seed=seed,
            )
        return powers[n]

    low, high = None, min_raters
    while power(high) < target:
        if high == max_raters:
            break
        low, high = high, min(2 * high, max_raters)
    found: int | None = high if power(high) >= target else None
    if found is not None and low is not None:
        while found - low > 1:
            middle = (low + found) // 2
            if power(middle) >= target:
                found = middle
            else:
                low = middle
    counts = sorted(powers)
    curve = pd.DataFrame({
        "n_raters": counts,
        "power": [powers[n] for n in counts],
        "power_se": [math.sqrt(powers[n] * (1 - powers[n]) / sims) for n in counts],
    })  # fmt: skip
    return PowerResult(found, curve, delta, target, alpha, images, sims, pairing, model)

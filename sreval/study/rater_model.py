"""How a simulated rater scores: the one model that both the simulated raters of a study and the power analysis
draw from.

It is SUREAL's P.910 model (Li & Bampis, "Recover subjective quality scores from noisy measurements") on a
category scale: rater r has a bias b_r ~ N(0, σ_b) and an inconsistency υ_r, by default |N(0, σ_v)| + 0.05 (the
floor keeps every rater a little noisy), or drawn with replacement from the fitted inconsistencies of a pilot;
a stimulus of true quality q gets the score clip(round-half-up(q + b_r + υ_r · X), scale), X ~ N(0, 1).

Random numbers come from the caller's generator in a fixed order (all biases, then all inconsistencies; then the
caller's X), so that a seed gives the same raters and scores wherever the model is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sreval.errors import ParameterError
from sreval.vocabulary import ACR_SCALE

#: The smallest default inconsistency: no simulated rater is perfectly consistent.
MIN_INCONSISTENCY = 0.05

#: A number or an array of numbers (arrays broadcast).
Values = float | NDArray[np.float64]


@dataclass(frozen=True)
class RaterModel:
    """How simulated raters behave: bias SD and inconsistency (pilot values to resample, or a half-normal)."""

    bias_sd: float = 0.5
    inconsistency_sd: float = 0.5  # υ = |N(0, inconsistency_sd)| + MIN_INCONSISTENCY when `inconsistencies` is empty
    inconsistencies: tuple[float, ...] = ()  # a pilot's fitted υ_i, drawn with replacement
    source: str = "defaults (as `sreval study simulate`)"

    def __post_init__(self) -> None:
        for name in ("bias_sd", "inconsistency_sd"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ParameterError(name, f"{name} must be a finite number ≥ 0, got {value}")

    def draw(
        self, rng: np.random.Generator, shape: tuple[int, ...] = ()
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Biases and inconsistencies of `shape` raters (shape () for one rater: two 0-d arrays)."""
        bias = np.asarray(rng.normal(0.0, self.bias_sd, shape), dtype=np.float64)
        if self.inconsistencies:
            upsilon = rng.choice(np.asarray(self.inconsistencies, dtype=np.float64), size=shape, replace=True)
        else:
            upsilon = np.abs(rng.normal(0.0, self.inconsistency_sd, shape)) + MIN_INCONSISTENCY
        return bias, np.asarray(upsilon, dtype=np.float64)


def rate(
    quality: Values,
    bias: Values,
    inconsistency: Values,
    noise: Values,
    scale: tuple[float, float] = ACR_SCALE,
) -> NDArray[np.float64]:
    """Scores of raters (bias, inconsistency) for stimuli of true `quality`, given standard normal `noise`:
    clip(round-half-up(quality + bias + inconsistency · noise), scale). Arrays broadcast."""
    low, high = scale
    latent = np.asarray(quality, dtype=np.float64) + bias + np.multiply(inconsistency, noise)
    return np.asarray(np.clip(np.floor(latent + 0.5), low, high), dtype=np.float64)

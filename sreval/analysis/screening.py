"""Observer screening of ITU-R BT.500-14 (10/2019) Annex 1 §2.3.1 (`rejected_bt500` in `raters.csv`).

For every presentation (here: stimulus × repetition; BT.500's test condition j, sequence k, repetition r) the
mean ū, the standard deviation S and the kurtosis coefficient β₂ = m₄ / m₂² (m_x = Σ (u − ū)^x / N) of its
scores are computed. The scores are taken as normally distributed when 2 ≤ β₂ ≤ 4; then a score ≥ ū + 2S adds
one to the observer's P and a score ≤ ū − 2S one to Q; otherwise the limits are ū ± √20·S. An observer is
rejected when (P + Q) / (J·K·R) > 0.05 and |P − Q| / (P + Q) < 0.3: many outlying scores, on both sides.

Choices where the recommendation assumes a complete design:

* J·K·R is the number of presentations the observer rated (all of them in a complete design);
* S uses N − 1 (`ddof=1`), as Annex 1 §2.2 defines it; SUREAL's BT500 model uses N (`ddof=0`), which reproduces its
  published results (see the tests);
* presentations with fewer than two scores are left out (of J·K·R too); in a presentation whose scores all
  agree (S = 0, β₂ undefined) nobody is an outlier (taken literally, S = 0 would put every observer at once
  above and below the limits, as SUREAL does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sreval.errors import ParameterError, SrevalError

#: Rejection thresholds of BT.500-14 Annex 1 §2.3.1.
OUTLIER_FRACTION = 0.05
SYMMETRY = 0.3


@dataclass(frozen=True)
class ScreeningResult:
    """Per observer (columns of the input matrix): outlier counts and the decision."""

    p: NDArray[np.int64]  # scores above the upper limit
    q: NDArray[np.int64]  # scores below the lower limit
    presentations: NDArray[np.int64]  # presentations rated (with at least two scores)
    rejected: NDArray[np.bool_]


def bt500_screen(scores: NDArray[np.float64], *, ddof: int = 1) -> ScreeningResult:
    """Screen observers on a presentations × observers matrix (NaN = not rated)."""
    o = np.asarray(scores, dtype=np.float64)
    if o.ndim != 2:
        raise ParameterError("scores", f"scores must be a presentations × observers matrix, got shape {o.shape}")
    if ddof not in (0, 1):
        raise ParameterError("ddof", f"ddof must be 0 or 1, got {ddof}")
    rated = ~np.isnan(o)
    n = rated.sum(axis=1)
    usable = n >= 2
    o, rated, n = o[usable], rated[usable], n[usable]
    presentations = rated.sum(axis=0).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(o, axis=1) if o.size else np.zeros(0)
        centred = o - mean[:, None]
        m2 = np.nansum(centred**2, axis=1) / n
        m4 = np.nansum(centred**4, axis=1) / n
        kurtosis = m4 / m2**2
        s = np.sqrt(np.nansum(centred**2, axis=1) / (n - ddof))
    factor = np.where((kurtosis >= 2) & (kurtosis <= 4), 2.0, math.sqrt(20.0))
    spread = s > 0
    limit = (factor * s)[:, None]
    above = rated & spread[:, None] & (o >= mean[:, None] + limit)
    below = rated & spread[:, None] & (o <= mean[:, None] - limit)
    p = above.sum(axis=0).astype(np.int64)
    q = below.sum(axis=0).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        many = (p + q) / presentations > OUTLIER_FRACTION
        symmetric = np.abs(p - q) / (p + q) < SYMMETRY
    return ScreeningResult(p, q, presentations, np.asarray(many & symmetric, dtype=bool))


def screen_raters(ratings: pd.DataFrame, *, ddof: int = 1) -> pd.DataFrame:
    """BT.500 screening of the raters of a long ratings table: rater, bt500_p, bt500_q, bt500_presentations,
    rejected_bt500. Presentations are stimulus × repetition."""
    if ratings.empty:
        raise SrevalError("no ratings to screen")
    matrix = ratings.pivot_table(index=["stimulus", "repetition"], columns="rater", values="score", aggfunc="mean")
    result = bt500_screen(matrix.to_numpy(np.float64), ddof=ddof)
    return pd.DataFrame({
        "rater": matrix.columns.astype(str),
        "bt500_p": result.p,
        "bt500_q": result.q,
        "bt500_presentations": result.presentations,
        "rejected_bt500": result.rejected,
    })  # fmt: skip

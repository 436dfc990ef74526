"""NIQE's per-block features in numpy (`sreval.metrics.niqe` calls them): the AGGD fit of every block's MSCN
coefficients and of their products with 4 circularly shifted copies, for all blocks and all 5 arrays at once.

An AGGD fit needs five sums per block: the count and the sum of squares of the negative values, the same of the
positive ones, and the sum of absolute values. All 5·n_blocks fits then share one vectorised pass per sum and one
search of the alpha grid.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.special

SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # LIVE computefeature.m (BasicSR's port uses the same)
FEATURES_PER_SCALE = 18


@functools.cache
def aggd_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The AGGD grid: alpha = 0.2:0.001:10 as MATLAB's colon builds it, r(alpha), and the gamma ratios per alpha.

    MATLAB's colon fills a:d:b from both ends (a + k·d for the first half, b − k·d for the second, (a+b)/2 in the
    middle). r(alpha) = Γ(2/α)² / (Γ(1/α)Γ(3/α)) is strictly increasing on the grid, which the nearest-point search
    relies on (checked in the tests).
    """
    a, step, b = 0.2, 0.001, 10.0
    n = round((b - a) / step)
    k = np.arange(n // 2 + 1)
    alpha = np.empty(n + 1)
    alpha[k] = a + k * step
    alpha[n - k] = b - k * step
    if n % 2 == 0:
        alpha[n // 2] = (a + b) / 2
    g1, g2, g3 = (scipy.special.gamma(m / alpha) for m in (1, 2, 3))
    return alpha, g2**2 / (g1 * g3), np.sqrt(g1 / g3), g2 / g1


def grid_index(r_grid: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MATLAB `[~, i] = min((r_grid − target).^2)` for a sorted grid: the nearer neighbour, the first on a tie.

    A NaN or Inf target makes every squared difference NaN or Inf, and MATLAB's min then returns index 1.
    """
    finite = np.isfinite(target)
    t = np.where(finite, target, 0.0)
    hi = np.minimum(np.searchsorted(r_grid, t), r_grid.size - 1)
    lo = np.maximum(hi - 1, 0)
    pick_lo = (r_grid[lo] - t) ** 2 <= (r_grid[hi] - t) ** 2
    index: np.ndarray = np.where(finite, np.where(pick_lo, lo, hi), 0)
    return index


def _pieces(shift: int, size: int) -> list[tuple[slice, slice]]:
    """(destination, source) slices of one axis for MATLAB's circshift by `shift` (np.roll's direction)."""
    s = shift % size
    pieces = [(slice(s, size), slice(0, size - s))]
    if s:
        pieces.append((slice(0, s), slice(size - s, size)))
    return pieces


def _shifted_product(blocks: np.ndarray, shift: tuple[int, int], out: np.ndarray) -> None:
    """out = blocks · circshift(blocks, shift) within each block of (n, B, B)."""
    size = blocks.shape[-1]
    for rows, rows_from in _pieces(shift[0], size):
        for cols, cols_from in _pieces(shift[1], size):
            np.multiply(blocks[:, rows, cols], blocks[:, rows_from, cols_from], out=out[:, rows, cols])


def _aggd(values: np.ndarray) -> tuple[np.ndarray, ...]:
    """LIVE `estimateaggdparam` of each row of (m, n): (alpha, beta_l, beta_r, gamma(2/α)/gamma(1/α)).

    An empty side gives 0/0 = NaN, as MATLAB's mean([]) does.
    """
    alpha_grid, r_grid, beta_factor, mean_factor = aggd_tables()
    n = values.shape[-1]
    below = np.minimum(values, 0.0)
    above = np.maximum(values, 0.0)
    sq_below = np.einsum("ij,ij->i", below, below)
    sq_above = np.einsum("ij,ij->i", above, above)
    mean_abs = (above.sum(-1) - below.sum(-1)) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(sq_below / np.count_nonzero(below, axis=-1))
        right = np.sqrt(sq_above / np.count_nonzero(above, axis=-1))
        g = left / right
        rhat = mean_abs**2 / ((sq_below + sq_above) / n)
        rhatnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    i = grid_index(r_grid, rhatnorm)
    return alpha_grid[i], left * beta_factor[i], right * beta_factor[i], mean_factor[i]


def block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """`blkproc(mscn, [block block], @computefeature)` of (H, W), H and W multiples of `block` → (n_blocks, 18),
    blocks down the columns like MATLAB."""
    h, w = mscn.shape
    rows, cols = h // block, w // block
    n_blocks = rows * cols
    arrays = np.empty((1 + len(SHIFTS), n_blocks, block, block))
    # Column-major block order: block c·rows + r is rows r·B.., columns c·B..
    arrays[0].reshape(cols, rows, block, block)[...] = mscn.reshape(rows, block, cols, block).transpose(2, 0, 1, 3)
    for k, shift in enumerate(SHIFTS, start=1):
        _shifted_product(arrays[0], shift, arrays[k])
    alpha, beta_l, beta_r, mean_factor = (
        p.reshape(1 + len(SHIFTS), n_blocks) for p in _aggd(arrays.reshape(-1, block * block))
    )
    feats = [alpha[0], (beta_l[0] + beta_r[0]) / 2]
    for k in range(1, 1 + len(SHIFTS)):
        feats += [alpha[k], (beta_r[k] - beta_l[k]) * mean_factor[k], beta_l[k], beta_r[k]]
    out: np.ndarray = np.stack(feats, axis=-1)
    return out

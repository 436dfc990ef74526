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
    """(destination, source) slices of one axis for MATLAB's circshift by `shift` (np.roll's direction): first
    the part that does not wrap around, then the part that does (if any)."""
    pieces = [(slice(max(shift, 0), size + min(shift, 0)), slice(max(-shift, 0), size - max(shift, 0)))]
    if shift > 0:
        pieces.append((slice(0, shift), slice(size - shift, size)))
    elif shift < 0:
        pieces.append((slice(size + shift, size), slice(0, -shift)))
    return pieces


def _shifted_product(blocks: np.ndarray, shift: tuple[int, int], out: np.ndarray) -> None:
    """out = blocks · circshift(blocks, shift) within each block of (n, B, B).

    One contiguous product over all blocks with the flat offset of the shift is right wherever the shift does
    not wrap around the block; the rows and columns where it does (one of each per block) are redone.
    """
    size = blocks.shape[-1]
    offset = shift[0] * size + shift[1]
    if offset <= 0:
        raise ValueError(f"shift {shift} must point forward in the block")
    flat, flat_out = blocks.reshape(-1), out.reshape(-1)
    np.multiply(flat[offset:], flat[:-offset], out=flat_out[offset:])
    for k, (rows, rows_from) in enumerate(_pieces(shift[0], size)):
        for m, (cols, cols_from) in enumerate(_pieces(shift[1], size)):
            if k or m:
                np.multiply(blocks[:, rows, cols], blocks[:, rows_from, cols_from], out=out[:, rows, cols])


def _moments(values: np.ndarray) -> np.ndarray:
    """What the AGGD fit needs of each row of (m, n): Σ v² and count of v < 0, the same of v > 0, Σ |v| → (5, m)."""
    below = np.minimum(values, 0.0)
    above = np.maximum(values, 0.0)
    return np.stack(
        [
            np.einsum("ij,ij->i", below, below),
            np.count_nonzero(below, axis=-1),
            np.einsum("ij,ij->i", above, above),
            np.count_nonzero(above, axis=-1),
            above.sum(-1) - below.sum(-1),
        ]
    )


def _aggd(moments: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """LIVE `estimateaggdparam` from `_moments` of n values: (alpha, beta_l, beta_r, gamma(2/α)/gamma(1/α)).

    An empty side gives 0/0 = NaN, as MATLAB's mean([]) does.
    """
    alpha_grid, r_grid, beta_factor, mean_factor = aggd_tables()
    sq_below, n_below, sq_above, n_above, abs_sum = moments
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(sq_below / n_below)
        right = np.sqrt(sq_above / n_above)
        g = left / right
        rhat = (abs_sum / n) ** 2 / ((sq_below + sq_above) / n)
        rhatnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    i = grid_index(r_grid, rhatnorm)
    return alpha_grid[i], left * beta_factor[i], right * beta_factor[i], mean_factor[i]


#: Coefficients per batch of whole block columns: the batch's 5 arrays then stay in the processor's caches.
BATCH_PIXELS = 1 << 16


def block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """`blkproc(mscn, [block block], @computefeature)` of (H, W), H and W multiples of `block` → (n_blocks, 18),
    blocks down the columns like MATLAB."""
    h, w = mscn.shape
    rows, cols = h // block, w // block
    step = max(1, BATCH_PIXELS // (h * block))
    arrays = np.empty((1 + len(SHIFTS), rows * min(step, cols), block, block))
    moments = []
    for left in range(0, cols, step):
        n = min(step, cols - left)
        batch = arrays[:, : rows * n]
        # Column-major block order: block c·rows + r is rows r·B.., columns c·B..
        columns = mscn[:, left * block : (left + n) * block]
        batch[0].reshape(n, rows, block, block)[...] = columns.reshape(rows, block, n, block).transpose(2, 0, 1, 3)
        for k, shift in enumerate(SHIFTS, start=1):
            _shifted_product(batch[0], shift, batch[k])
        moments.append(np.stack([_moments(array.reshape(rows * n, block * block)) for array in batch], axis=1))
    alpha, beta_l, beta_r, mean_factor = _aggd(np.concatenate(moments, axis=-1), block * block)
    feats = [alpha[0], (beta_l[0] + beta_r[0]) / 2]
    for k in range(1, 1 + len(SHIFTS)):
        feats += [alpha[k], (beta_r[k] - beta_l[k]) * mean_factor[k], beta_l[k], beta_r[k]]
    out: np.ndarray = np.stack(feats, axis=-1)
    return out

"""NIQE's per-block features in numpy (`sreval.metrics.niqe` calls them): the AGGD fit of every block's MSCN
coefficients and of their products with 4 circularly shifted copies, for all blocks and all 5 arrays at once.

An AGGD fit needs five sums per block: the count and the sum of squares of the negative values, the same of the
positive ones, and the sum of absolute values. They are taken batch by batch of blocks, each array of a batch in
buffers that stay in the processor's caches, with a few whole-array numpy steps per array; all 5·n_blocks fits then
share one search of the alpha grid. Where numba imports, `sreval.metrics.niqe_jit.block_features` computes the
same moments compiled, with the same bits (its docstring says how the BLAS sums are kept), and hands them to
`features`; where it cannot sum like numpy, it still makes each batch's sides and counts in one call (`sides`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

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


def _count_rows(mask: np.ndarray) -> np.ndarray:
    """Count of True in each row of a C-contiguous bool array (..., n). numpy's count_nonzero along an axis casts
    every bool to an integer first; counting the set bits of 8 bools at a time is several times faster."""
    n = mask.shape[-1]
    if n % 8 or not hasattr(np, "bitwise_count"):  # bitwise_count: numpy >= 2.0
        counts: np.ndarray = np.count_nonzero(mask, axis=-1)
        return counts
    words = mask.view(np.uint64)  # 8 bools (bytes 0 or 1) per word: its set bits are its True values
    totals: np.ndarray = np.add.reduce(np.bitwise_count(words), axis=-1, dtype=np.uint16 if n < 1 << 16 else np.intp)
    return totals


#: Longest dot product handed to BLAS at once: OpenBLAS splits longer ones (over 10 000 values) over its threads,
#: and NIQE is meant to run on one.
DOT_LENGTH = 8192


def dot_pieces(n: int) -> int:
    """Into how many equal pieces `_row_dots` cuts a row of n values (a power of 2; einsum takes the row if its
    pieces are still longer than DOT_LENGTH)."""
    pieces = 1
    while n // pieces > DOT_LENGTH and n % (2 * pieces) == 0:
        pieces *= 2
    return pieces


def _row_dots(values: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Σ values·other along the last axis of (..., n), values C-contiguous along it; other (..., n) or (n,).

    BLAS's dot (np.vecdot) is several times faster than numpy's multiply-then-sum and about 1.5 times faster than
    its pairwise sum; its summation order depends on the BLAS build and the processor (as the covariance product
    and SVD of the score already do), a difference of a few ulps. Rows longer than DOT_LENGTH are cut into equal
    pieces; numpy's einsum takes any that cannot be.
    """
    n = values.shape[-1]
    pieces = dot_pieces(n)
    if n // pieces > DOT_LENGTH or not hasattr(np, "vecdot"):  # vecdot: numpy >= 2.0
        sums: np.ndarray = np.einsum("...i,...i->...", values, np.broadcast_to(other, values.shape))
        return sums
    split = (*values.shape[:-1], pieces, n // pieces)
    parts = other[: n // pieces] if other.ndim == 1 else other.reshape(split)
    return np.vecdot(values.reshape(split), parts).sum(-1)  # type: ignore[no-any-return]


class _Moments:
    """What the AGGD fit needs of each row of an (m, n) array: Σ v² and count of v < 0, the same of v > 0, and
    Σ |v| → (5, m), for arrays of up to `m` rows of n values, in buffers reused from one array to the next.

    The negative and positive parts go into one (2, m, n) buffer, so that each step covers both sides at once.
    ±0 counts on neither side and NaN on both, as in min/max followed by count_nonzero.
    """

    def __init__(self, m: int, n: int) -> None:
        self.zeros = np.zeros((m, n))  # numpy's min/max against an array of zeros is about twice as fast as against 0.0
        self.ones = np.ones(n)
        self.sides = np.empty((2, m, n))
        self.nonzero = np.empty((2, m, n), dtype=bool)

    def __call__(self, values: np.ndarray, out: np.ndarray) -> None:
        """The moments of values (m', n), m' <= m, into out (5, m')."""
        m = values.shape[0]
        sides, nonzero, zeros = self.sides[:, :m], self.nonzero[:, :m], self.zeros[:m]
        np.minimum(values, zeros, out=sides[0])
        np.maximum(values, zeros, out=sides[1])
        np.not_equal(sides, 0.0, out=nonzero)
        out[1::2] = _count_rows(nonzero)
        side_sums(sides, self.ones, out)


def side_sums(sides: np.ndarray, ones: np.ndarray, out: np.ndarray) -> None:
    """The sums of the moments from the two sides (2, m, n) of m rows (`_Moments`): Σ v² of each into out[0] and
    out[2], Σ |v| into out[4]."""
    below_sum, above_sum = _row_dots(sides, ones)
    np.subtract(above_sum, below_sum, out=out[4])  # Σ |v|
    out[0:4:2] = _row_dots(sides, sides)


def _aggd(moments: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """LIVE `estimateaggdparam` from the `_Moments` of n values: (alpha, beta_l, beta_r, gamma(2/α)/gamma(1/α)).

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


#: Coefficients per batch of blocks: the batch and the buffers its sums work in stay in the processor's caches.
BATCH_PIXELS = 1 << 16


def _copy_blocks(mscn: np.ndarray, block: int, first: int, out: np.ndarray) -> None:
    """Blocks first, first + 1, ... in MATLAB's order (down the columns) of (H, W) into out (count, B, B): one
    copy per block column the range touches."""
    rows = mscn.shape[0] // block
    done = 0
    while done < out.shape[0]:
        col, row = divmod(first + done, rows)
        n = min(out.shape[0] - done, rows - row)
        piece = mscn[row * block : (row + n) * block, col * block : (col + 1) * block]
        out[done : done + n] = piece.reshape(n, block, block)
        done += n


#: `sides(mscn, block, first, n, k, sides, counts)`: for blocks first .. first + n − 1 (MATLAB's order) of the
#: C-contiguous float64 plane mscn, array k of each (0: the coefficients, k: their products with the copy shifted
#: by SHIFTS[k − 1]), the two sides of its values into sides[:, :n] (2, n, block²) and the count of each side into
#: counts[:, :n], exactly as `_Moments` makes them (`sreval.metrics.niqe_jit.block_sides` compiles it).
SidesKernel = Callable[[np.ndarray, int, int, int, int, np.ndarray, np.ndarray], None]


def block_features(mscn: np.ndarray, block: int, sides: SidesKernel | None = None) -> np.ndarray:
    """`blkproc(mscn, [block block], @computefeature)` of (H, W), H and W multiples of `block` → (n_blocks, 18),
    blocks down the columns like MATLAB.

    With `sides`, that kernel makes each batch's sides and counts in one call; the sums over them are the same
    calls either way (BLAS dot products), so the features are the same bits.
    """
    h, w = mscn.shape
    n_blocks = (h // block) * (w // block)
    step = min(n_blocks, max(1, BATCH_PIXELS // (block * block)))
    moments = np.empty((1 + len(SHIFTS), 5, n_blocks))
    if sides is not None:
        batch_sides, counts = np.empty((2, step, block * block)), np.empty((2, step))
        ones = np.ones(block * block)
        for first in range(0, n_blocks, step):
            n = min(step, n_blocks - first)
            for k in range(1 + len(SHIFTS)):
                sides(mscn, block, first, n, k, batch_sides, counts)
                out = moments[k, :, first : first + n]
                out[1::2] = counts[:, :n]
                side_sums(batch_sides[:, :n], ones, out)
        return features(moments, block)
    blocks, product = np.empty((step, block, block)), np.empty((step, block, block))
    moments_of = _Moments(step, block * block)
    for first in range(0, n_blocks, step):
        n = min(step, n_blocks - first)
        batch, batch_product = blocks[:n], product[:n]
        _copy_blocks(mscn, block, first, batch)
        moments_of(batch.reshape(n, -1), moments[0, :, first : first + n])
        for k, shift in enumerate(SHIFTS, start=1):
            _shifted_product(batch, shift, batch_product)
            moments_of(batch_product.reshape(n, -1), moments[k, :, first : first + n])
    return features(moments, block)


def features(moments: np.ndarray, block: int) -> np.ndarray:
    """The 18 features per block from the moments (1 + len(SHIFTS), 5, n_blocks) of its arrays."""
    alpha, beta_l, beta_r, mean_factor = _aggd(moments.transpose(1, 0, 2), block * block)
    feats = [alpha[0], (beta_l[0] + beta_r[0]) / 2]
    for k in range(1, 1 + len(SHIFTS)):
        feats += [alpha[k], (beta_r[k] - beta_l[k]) * mean_factor[k], beta_l[k], beta_r[k]]
    out: np.ndarray = np.stack(feats, axis=-1)
    return out

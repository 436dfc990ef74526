"""The numpy kernels behind `sreval.metrics.niqe`: one plane (H, W) float64 at a time, on the CPU.

Why numpy and not torch: NIQE is a long chain of small elementwise steps on one plane (about 200 passes over
it). Each torch call costs microseconds of dispatch and its threads fight over a shared CPU, while a numpy pass
over a plane that fits the cache costs tens of microseconds and runs the same way on every machine. The float64
steps are elementwise IEEE operations in a fixed order (no fused multiply-add, no BLAS), so the MSCN coefficients
are the same bits as the ring-by-ring torch formulation they replace (`tests/test_niqe_kernels.py` checks it).

Two kernels (the per-block AGGD fits are in `sreval.metrics.niqe_blocks`):

- `mscn_integer` / `mscn_float`: the MSCN coefficients from the ring sums of deviations (see `sreval.metrics.niqe`
  for why deviations are summed ring by ring). On a 0..255 integer plane every ring sum is an integer, computed
  exactly in int16/int32 from pair sums shared between rings; otherwise deviations are taken per mirror pair.
- `imresize_half`: MATLAB `imresize(x, 0.5)` in the same tap order as `sreval.matlab.imresize`, with strided
  slices of a mirrored copy instead of gathers.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from sreval.matlab.imresize import contributions

RADIUS = 3  # fspecial('gaussian', 7, 7/6)
SIGMA = 7 / 6

Ring = tuple[float, tuple[tuple[int, int], ...]]


@functools.cache
def window_rings() -> tuple[Ring, ...]:
    """MATLAB's window (fspecial, then divided by its sum again) by ring: (weight, offsets) per x²+y².

    All offsets of a ring carry the same double, so summing a ring's deviations before weighting is the same sum.
    Each listed offset stands for itself and its mirror image (−dy, −dx). The centre (deviation 0) is left out.
    """
    span = range(-RADIUS, RADIUS + 1)
    raw = {(y, x): math.exp(-(x * x + y * y) / (2 * SIGMA * SIGMA)) for y in span for x in span}
    total = math.fsum(raw.values())
    window = {k: v / total for k, v in raw.items()}
    total = math.fsum(window.values())
    rings: dict[int, list[tuple[int, int]]] = {}
    for y, x in window:
        if (y, x) > (0, 0):  # one of each mirror pair
            rings.setdefault(y * y + x * x, []).append((y, x))
    return tuple((window[offsets[0]] / total, tuple(offsets)) for _, offsets in sorted(rings.items()))


def _ring_shape(offsets: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """(a, b), a <= b: the ring is every (±a, ±b) and (±b, ±a). In a 7×7 window x²+y² fixes {|x|, |y|}."""
    y, x = offsets[0]
    a, b = sorted((abs(y), abs(x)))
    expected = {(s * p, t * q) for p, q in ((a, b), (b, a)) for s in (1, -1) for t in (1, -1)}
    if {o for y, x in offsets for o in ((y, x), (-y, -x))} != expected:
        raise AssertionError(f"ring {offsets} is not the set of (±{a}, ±{b}) and (±{b}, ±{a})")
    return a, b


def _ring_totals(padded: np.ndarray, h: int, w: int) -> list[np.ndarray]:
    """Σ over each ring (all its offsets, mirror images included) of the padded plane's values around each pixel.

    Built from horizontal pair sums p[j−d] + p[j+d] and their vertical pair sums, so the 9 rings cost 21 additions.
    Exact in the integer dtype of `padded` (the caller makes sure nothing overflows).
    """
    r = RADIUS
    centre = padded[:, r : r + w]
    across = {d: padded[:, r - d : r - d + w] + padded[:, r + d : r + d + w] for d in range(1, r + 1)}

    def down(a: np.ndarray, d: int) -> np.ndarray:
        pairs: np.ndarray = a[r - d : r - d + h] + a[r + d : r + d + h]
        return pairs

    totals = []
    for _, offsets in window_rings():
        a, b = _ring_shape(offsets)
        if a == 0:
            totals.append(across[b][r : r + h] + down(centre, b))
        elif a == b:
            totals.append(down(across[a], a))
        else:
            totals.append(down(across[b], a) + down(across[a], b))
    return totals


def _weighted_mscn(ring_sums: list[np.ndarray], ring_squares: list[np.ndarray]) -> np.ndarray:
    """−dev / (sqrt|Σ w·dev² − dev²| + 1), dev = Σ w·(ring sum): the float64 steps, in ring order.

    The operations and their order are those of the torch formulation this replaces (dev and var accumulated
    from zero ring by ring, var −= dev², then the quotient): the same bits. −dev/(s + 1) is written as
    dev/(−1 − s), which rounds identically (IEEE rounding is symmetric in sign).
    """
    weights = [weight for weight, _ in window_rings()]
    dev = np.multiply(ring_sums[0], weights[0], dtype=np.float64)
    var = np.multiply(ring_squares[0], weights[0], dtype=np.float64)
    scratch = np.empty_like(dev)
    for k in range(1, len(weights)):
        dev += np.multiply(ring_sums[k], weights[k], out=scratch, dtype=np.float64)
        var += np.multiply(ring_squares[k], weights[k], out=scratch, dtype=np.float64)
    var -= np.multiply(dev, dev, out=scratch)
    np.abs(var, out=var)
    np.sqrt(var, out=var)
    np.subtract(-1.0, var, out=var)
    mscn: np.ndarray = np.divide(dev, var, out=dev)
    return mscn


def mscn_integer(plane: np.ndarray) -> np.ndarray:
    """MSCN coefficients of a plane of integers 0..255 (H, W) → float64, from exact integer ring sums.

    Per ring k with n_k offsets: S_k = Σ x_o − n_k·x (int16: |S_k| <= 8·255) and
    Q_k = Σ (x_o − x)² = Σ x_o² − x·(Σ x_o + S_k) (int32: <= 8·255²). Every value is exact, so these are the
    integers any summation order of the deviations gives.
    """
    h, w = plane.shape
    r = RADIUS
    x = plane.astype(np.int16)
    padded = np.pad(x, r, mode="edge")
    squares = padded.astype(np.int32)
    squares *= squares
    totals, square_totals = _ring_totals(padded, h, w), _ring_totals(squares, h, w)
    times = {n: x * np.int16(n) for n in (4, 8)}
    ring_sums, ring_squares = [], []
    for total, square_total, (_, offsets) in zip(totals, square_totals, window_rings(), strict=True):
        ring_sum = total - times[2 * len(offsets)]
        both = total + ring_sum  # 2·Σ x_o − n·x, within int16
        ring_sums.append(ring_sum)
        ring_squares.append(square_total - np.multiply(x, both, dtype=np.int32))
    return _weighted_mscn(ring_sums, ring_squares)


def mscn_float(plane: np.ndarray) -> np.ndarray:
    """MSCN coefficients of any real plane (H, W) float64, from deviations summed per mirror pair and ring.

    For each offset o one difference plane e(q) = x(q+o) − x(q) serves both members of the pair: the deviation
    towards o at p is e(p), the one towards −o is −e(p−o) (IEEE subtraction is antisymmetric), so the pair sum
    a + b is e(p) − e(p−o) and a² + b² is e(p)² + e(p−o)², the same bits as computing a and b separately.
    """
    h, w = plane.shape
    r = RADIUS
    padded = np.pad(plane, r, mode="edge")
    ring_sums, ring_squares = [], []
    for _, offsets in window_rings():
        ring_sum = ring_square = None
        for dy, dx in offsets:  # dy >= 0
            left = max(dx, 0)
            rows, cols = slice(r - dy, r + h), slice(r - left, r + w + max(-dx, 0))
            diff = padded[rows.start + dy : rows.stop + dy, cols.start + dx : cols.stop + dx] - padded[rows, cols]
            square = diff * diff
            here = (slice(dy, dy + h), slice(left, left + w))
            there = (slice(0, h), slice(left - dx, left - dx + w))
            pair = diff[here] - diff[there]
            if ring_sum is None or ring_square is None:
                ring_sum, ring_square = pair, square[here] + square[there]
            else:
                ring_sum += pair
                ring_square += square[here]
                ring_square += square[there]
        assert ring_sum is not None and ring_square is not None
        ring_sums.append(ring_sum)
        ring_squares.append(ring_square)
    return _weighted_mscn(ring_sums, ring_squares)


@functools.cache
def _half_taps(length: int) -> tuple[int, tuple[tuple[int, float], ...]] | None:
    """MATLAB's ×0.5 taps along a dimension of `length` as (pad, ((start, weight), ...)), or None if irregular.

    Output i takes tap k from input start_k + 2i of the plane mirrored by `pad` ('symmetric', MATLAB's border)
    with the same weight for every i. This holds for every even length: the fraction of u = 2i + 1.5 never
    changes. Checked against `contributions` rather than assumed.
    """
    weights_t, indices_t = contributions(length, math.ceil(length * 0.5), 0.5)
    weights, indices = weights_t.numpy(), indices_t.numpy()
    out = weights.shape[0]
    if not (weights == weights[:1]).all():
        return None
    i = np.arange(out)
    starts = indices[out // 2] - 2 * (out // 2)
    pad = int(max(0, -starts.min(), (starts.max() + 2 * (out - 1)) - (length - 1)))
    if pad > length:
        return None
    unwrapped = starts[None, :] + 2 * i[:, None]
    mirrored = np.where(
        unwrapped < 0, -unwrapped - 1, np.where(unwrapped >= length, 2 * length - unwrapped - 1, unwrapped)
    )
    if not np.array_equal(mirrored, indices):
        return None
    return pad, tuple((int(s) + pad, float(wt)) for s, wt in zip(starts, weights[0], strict=True))


def _half_rows(x: np.ndarray) -> np.ndarray:
    """One ×0.5 pass down the rows of (H, W): Σ over taps, in tap order, of weight × input row (float64)."""
    taps = _half_taps(x.shape[0])
    out_rows = math.ceil(x.shape[0] * 0.5)
    if taps is None:  # general gather, as sreval.matlab.imresize does it
        weights_t, indices_t = contributions(x.shape[0], out_rows, 0.5)
        weights, indices = weights_t.numpy(), indices_t.numpy()
        gathered: np.ndarray = x[indices[:, 0]] * weights[:, :1]
        for k in range(1, weights.shape[1]):
            gathered += x[indices[:, k]] * weights[:, k : k + 1]
        return gathered
    pad, pairs = taps
    mirrored = np.pad(x, ((pad, pad), (0, 0)), mode="symmetric")
    scratch = np.empty((out_rows, x.shape[1]))
    out: np.ndarray | None = None
    for start, weight in pairs:
        term = np.multiply(mirrored[start : start + 2 * out_rows : 2], weight, out=scratch if out is not None else None)
        if out is None:
            out = term
        else:
            out += term
    assert out is not None
    return out


def imresize_half(x: np.ndarray) -> np.ndarray:
    """MATLAB `imresize(x, 0.5)` (bicubic, antialiased) of a float64 plane: height first, then width, each output
    the sum over taps in order of weight × input, as `sreval.matlab.imresize.imresize_float` (same bits)."""
    return np.ascontiguousarray(_half_rows(np.ascontiguousarray(_half_rows(x).T)).T)

"""The numpy kernels behind `sreval.metrics.niqe`: one plane (H, W) float64 at a time, on the CPU.

They run where numba does not import (the GPU machine's Python has none); elsewhere `sreval.metrics.niqe_jit`
compiles the same operations in the same order per pixel, and these are the reference its tests compare against
bit for bit. `sreval.metrics.niqe.kernels` chooses.

Why numpy and not torch: NIQE is a long chain of small elementwise steps on one plane (about 200 passes over
it). Each torch call costs microseconds of dispatch and its threads fight over a shared CPU, while a numpy pass
over a plane that fits the cache costs tens of microseconds and runs the same way on every machine. The float64
steps are elementwise IEEE operations in a fixed order (no fused multiply-add, no BLAS), so the MSCN coefficients
are the same bits as the ring-by-ring torch formulation they replace (`tests/test_niqe_kernels.py` checks it).
What numpy still costs: a few hundred calls per plane, each releasing and retaking the GIL, so that their dispatch
is a good part of the time and two threads scoring images side by side convoy on the GIL; the compiled kernels
make one call per plane.

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
from collections.abc import Callable

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


@functools.cache
def _ring_plan() -> tuple[tuple[float, int, int, int], ...]:
    """(weight, a, b, number of points) per ring, in `window_rings` order."""
    return tuple((weight, *_ring_shape(offsets), 2 * len(offsets)) for weight, offsets in window_rings())


def _flat_padded(plane: np.ndarray, dtype: type) -> tuple[np.ndarray, int]:
    """The plane with a 'replicate' border of RADIUS pixels (one more row above and below), flattened, and its
    row length. A window offset (dy, dx) is then the flat offset dy·row + dx: every step is one contiguous 1-D
    operation over whole padded rows (numpy runs those several times faster than 2-D slices); the values in the
    border columns are garbage and are cut off at the end. Written in place (np.pad copies the plane twice)."""
    r = RADIUS
    h, w = plane.shape
    padded = np.empty((h + 2 * r + 2, w + 2 * r), dtype)
    inner = padded[r + 1 : r + 1 + h]
    inner[:, r : r + w] = plane
    inner[:, :r] = inner[:, r : r + 1]
    inner[:, r + w :] = inner[:, r + w - 1 : r + w]
    padded[: r + 1] = inner[0]
    padded[r + 1 + h :] = inner[-1]
    return padded.reshape(-1), padded.shape[1]


def _crop(flat: np.ndarray, h: int, w: int) -> np.ndarray:
    """The (h, w) plane inside a result computed over h whole padded rows."""
    return flat.reshape(h, -1)[:, RADIUS : RADIUS + w]


class _RingTotals:
    """Σ over one ring (all its offsets, mirror images included) of the plane's values around each pixel, over
    the h rows of the plane (flat, padded rows of length `row`; see `_flat_padded`), one ring at a time into a
    reused buffer.

    Built from horizontal pair sums p[j−d] + p[j+d] and their vertical pair sums, so the 9 rings cost 21 additions.
    Exact in the integer dtype of `flat` (the caller makes sure nothing overflows).
    """

    def __init__(self, flat: np.ndarray, row: int, h: int) -> None:
        r = RADIUS
        n = (h + 2 * r) * row  # the rows a vertical pair sum reads: the plane's and r above and below
        self.row, self.size, self.middle = row, h * row, r * row  # where the plane's rows start within those n
        self.across = [flat[row : row + n]]  # d = 0: the plane itself
        self.across += [flat[row - d : row - d + n] + flat[row + d : row + d + n] for d in range(1, r + 1)]
        self.out, self.other = np.empty(self.size, flat.dtype), np.empty(self.size, flat.dtype)

    def _down(self, a: np.ndarray, d: int, out: np.ndarray) -> np.ndarray:
        up, down = self.middle - d * self.row, self.middle + d * self.row
        result: np.ndarray = np.add(a[up : up + self.size], a[down : down + self.size], out=out)
        return result

    def ring(self, a: int, b: int) -> np.ndarray:
        """The total over (±a, ±b) and (±b, ±a), a <= b (valid until the next call)."""
        if a == 0:
            self._down(self.across[0], b, self.out)
            np.add(self.out, self.across[b][self.middle : self.middle + self.size], out=self.out)
            return self.out
        self._down(self.across[b], a, self.out)
        if a == b:
            return self.out
        np.add(self.out, self._down(self.across[a], b, self.other), out=self.out)
        return self.out


class _Weighting:
    """−dev / (sqrt|Σ w·dev² − dev²| + 1), dev = Σ w·(ring sum): the float64 steps, ring by ring.

    The operations and their order are those of the torch formulation this replaces (dev and var accumulated
    from zero ring by ring, var −= dev², then the quotient): the same bits. −dev/(s + 1) is written as
    dev/(−1 − s), which rounds identically (IEEE rounding is symmetric in sign).
    """

    def __init__(self, size: int) -> None:
        self.dev, self.var, self.scratch = np.empty(size), np.empty(size), np.empty(size)
        self.first = True

    def add(self, ring_sum: np.ndarray, ring_square: np.ndarray, weight: float) -> None:
        if self.first:
            np.multiply(ring_sum, weight, out=self.dev, dtype=np.float64)
            np.multiply(ring_square, weight, out=self.var, dtype=np.float64)
            self.first = False
            return
        self.dev += np.multiply(ring_sum, weight, out=self.scratch, dtype=np.float64)
        self.var += np.multiply(ring_square, weight, out=self.scratch, dtype=np.float64)

    def mscn(self) -> np.ndarray:
        dev, var = self.dev, self.var
        var -= np.multiply(dev, dev, out=self.scratch)
        np.abs(var, out=var)
        np.sqrt(var, out=var)
        np.subtract(-1.0, var, out=var)
        result: np.ndarray = np.divide(dev, var, out=dev)
        return result


#: Pixels per strip of rows: the ~10 planes a strip works on then stay in the processor's caches (a whole
#: Urban100 image's would not), while each numpy call still covers enough pixels to hide its overhead.
STRIP_PIXELS = 1 << 15


def _by_strips(plane: np.ndarray, dtype: type, strip: Callable[[np.ndarray, int, int], np.ndarray]) -> np.ndarray:
    """Run `strip(flat, row, h)` on bands of rows of the padded plane; each band's flat view has the layout
    `_flat_padded` gives a plane of h rows (its RADIUS + 1 rows of context above and below included)."""
    h, w = plane.shape
    flat, row = _flat_padded(plane, dtype)
    out = np.empty(h * row)
    rows = max(8, STRIP_PIXELS // row)
    for top in range(0, h, rows):
        n = min(rows, h - top)
        out[top * row : (top + n) * row] = strip(flat[top * row : (top + n + 2 * RADIUS + 2) * row], row, n)
    return _crop(out, h, w)


def mscn_integer(plane: np.ndarray) -> np.ndarray:
    """MSCN coefficients of a plane of integers 0..255 (H, W) → float64, from exact integer ring sums.

    Per ring k with n_k offsets: S_k = Σ x_o − n_k·x (int16: |S_k| <= 8·255) and
    Q_k = Σ (x_o − x)² = Σ x_o² − x·(Σ x_o + S_k) (int32: <= 8·255²). Every value is exact, so these are the
    integers any summation order of the deviations gives.
    """
    return _by_strips(plane, np.int16, _integer_strip)


def _integer_strip(flat: np.ndarray, row: int, h: int) -> np.ndarray:
    squares = flat.astype(np.int32)
    squares *= squares
    totals, square_totals = _RingTotals(flat, row, h), _RingTotals(squares, row, h)
    start, size = (RADIUS + 1) * row, h * row
    x = flat[start : start + size]
    x32 = x.astype(np.int32)  # so that each ring's x·(2·Σ x_o − n·x) casts one operand, not two
    times = {n: x * np.int16(n) for n in (4, 8)}
    ring_sum, both, product = np.empty(size, np.int16), np.empty(size, np.int16), np.empty(size, np.int32)
    weighting = _Weighting(size)
    for weight, a, b, points in _ring_plan():
        total = totals.ring(a, b)
        np.subtract(total, times[points], out=ring_sum)
        np.add(total, ring_sum, out=both)  # 2·Σ x_o − n·x, within int16
        np.multiply(both, x32, out=product)
        ring_square = np.subtract(square_totals.ring(a, b), product, out=product)
        weighting.add(ring_sum, ring_square, weight)
    return weighting.mscn()


def mscn_float(plane: np.ndarray) -> np.ndarray:
    """MSCN coefficients of any real plane (H, W) float64, from deviations summed per mirror pair and ring.

    For each offset o one difference plane e(q) = x(q+o) − x(q) serves both members of the pair: the deviation
    towards o at p is e(p), the one towards −o is −e(p−o) (IEEE subtraction is antisymmetric), so the pair sum
    a + b is e(p) − e(p−o) and a² + b² is e(p)² + e(p−o)², the same bits as computing a and b separately.
    """
    return _by_strips(plane, np.float64, _float_strip)


def _float_strip(flat: np.ndarray, row: int, h: int) -> np.ndarray:
    start, n = (RADIUS + 1) * row, h * row
    longest = RADIUS * row + RADIUS
    diff_buffer, square_buffer = np.empty(n + longest), np.empty(n + longest)
    ring_sum, ring_square, pair = np.empty(n), np.empty(n), np.empty(n)
    weighting = _Weighting(n)
    for weight, offsets in window_rings():
        for k, (dy, dx) in enumerate(offsets):
            s = dy * row + dx  # > 0: offsets are the half with (dy, dx) > (0, 0)
            diff = np.subtract(flat[start : start + n + s], flat[start - s : start + n], out=diff_buffer[: n + s])
            square = np.multiply(diff, diff, out=square_buffer[: n + s])
            if k == 0:
                np.subtract(diff[s:], diff[:n], out=ring_sum)
                np.add(square[s:], square[:n], out=ring_square)
            else:
                ring_sum += np.subtract(diff[s:], diff[:n], out=pair)
                ring_square += square[s:]
                ring_square += square[:n]
        weighting.add(ring_sum, ring_square, weight)
    return weighting.mscn()


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

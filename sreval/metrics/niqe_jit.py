"""NIQE's kernels compiled with numba: the same floating-point operations, in the same order per pixel, as the numpy
kernels of `sreval.metrics.niqe_kernels` and the per-block code of `sreval.metrics.niqe_blocks`, so the same bits
(`tests/test_niqe_jit.py` compares them with `np.array_equal` on random, adversarial and real planes).
`sreval.metrics.niqe.kernels` runs these where numba imports and the numpy ones elsewhere.

Why compiled: the numpy kernels make a few hundred calls per plane, each a short pass that releases and retakes
the GIL. One image pays their dispatch, and two threads scoring images side by side convoy on the GIL. Here each
kernel is one call per plane that holds the GIL only on entry and exit (`nogil=True`), reading each pixel's
neighbourhood while it is in the processor's caches. The block features' moments are one call per plane too (the
AGGD fits on them stay in numpy).

What keeps the bits:

- No `fastmath`: LLVM may then neither reassociate nor contract a·b + c into a fused multiply-add (it fuses only
  what the IR marks as contractible, and numba marks nothing without fastmath). The tests would see either.
- `error_model="numpy"`: a float division by zero is IEEE's rather than a raised ZeroDivisionError, whose check
  keeps LLVM from vectorising the loop. No divisor here can be zero, so no result changes.
- The integer kernel's ring sums are integers below 2^20 held in float64: exact whatever their order. Its float64
  steps per pixel follow the numpy code: dev and var from the first ring's product, then += ring by ring;
  var −= dev²; |var|; sqrt; dev / (−1 − sqrt) (see `niqe_kernels._Weighting`). The float kernel sums each mirror
  pair as (x(p+o) − x(p)) − (x(p) − x(p−o)) and squares as the numpy code's difference planes do, offsets in
  `window_rings` order.
- The replicate border is read from a padded copy (of the plane, or of each row) built in the kernel.
- `imresize_half` sums the taps in order, each product then one addition, as `niqe_kernels.imresize_half`.
- The block products are single multiplications (commutative in IEEE), the sides numpy's minimum and maximum
  against +0. Their sums are BLAS dot products in numpy (np.vecdot, in pieces of at most DOT_LENGTH values, the
  pieces then summed by numpy); numba's np.dot calls BLAS's ddot too, but the BLAS that scipy links, so the
  compiled sums are used only where the two give the same bits on a probe (`blas_dots_agree`) and the pieces are
  few enough that numpy adds them in order. Otherwise one call per batch and array makes the sides and counts
  and numpy sums them as before.

Each kernel is compiled for one signature (C-contiguous float64 planes, float64/int64 tables) on first use and
cached beside this module (`cache=True`, or under NUMBA_CACHE_DIR); the wrappers make sure of the dtypes.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from sreval.metrics import niqe_blocks
from sreval.metrics.niqe_blocks import SHIFTS
from sreval.metrics.niqe_kernels import RADIUS, _half_taps, _ring_plan, window_rings

_U = np.uint64

#: The rings as (a, b), a <= b, in `window_rings` order: the integer kernel's pair sums are laid out for these.
RINGS = ((0, 1), (1, 1), (0, 2), (1, 2), (2, 2), (0, 3), (1, 3), (2, 3), (3, 3))


@functools.cache
def _integer_tables() -> tuple[np.ndarray, np.ndarray]:
    """(weights, points) per ring as arrays, after checking that the rings are those the kernel expects."""
    plan = _ring_plan()
    if RADIUS != 3 or tuple((a, b) for _, a, b, _ in plan) != RINGS:
        raise AssertionError(f"NIQE's window rings changed: {plan}")
    weights = np.array([p[0] for p in plan], dtype=np.float64)
    # float64: the kernel's n·x is then a float product, exact like the rest of its integer arithmetic.
    return weights, np.array([p[3] for p in plan], dtype=np.float64)


@functools.cache
def _float_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(weights, first offset index per ring + the end, dy, dx) of the half-window offsets in `window_rings` order."""
    rings = window_rings()
    weights = np.array([weight for weight, _ in rings], dtype=np.float64)
    starts = np.cumsum([0] + [len(offsets) for _, offsets in rings]).astype(np.int64)
    dy = np.array([o[0] for _, offsets in rings for o in offsets], dtype=np.int64)
    dx = np.array([o[1] for _, offsets in rings for o in offsets], dtype=np.int64)
    return weights, starts, dy, dx


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _replicate_pad(plane: np.ndarray, r: int) -> np.ndarray:  # pragma: no cover - compiled
    h, w = plane.shape
    padded = np.empty((h + 2 * r, w + 2 * r), np.float64)
    for i in range(h + 2 * r):
        src = min(max(i - r, 0), h - 1)
        for j in range(w + 2 * r):
            padded[i, j] = plane[src, min(max(j - r, 0), w - 1)]
    return padded


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _weighting_finish(dev: np.ndarray, var: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for x in range(dev.shape[0]):
        v = var[x] - dev[x] * dev[x]
        out[x] = dev[x] / (-1.0 - math.sqrt(abs(v)))


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _pair(buffer: np.ndarray, up: int, down: int, d: int, j: int) -> float:  # pragma: no cover - compiled
    """The horizontal pair sums at distance d of the buffer rows `up` and `down`, added."""
    total: float = buffer[up, d, j] + buffer[down, d, j]
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _ring_totals(buffer: np.ndarray, rows: tuple[int, ...], j: int) -> tuple[float, ...]:  # pragma: no cover
    """Σ over each ring (a, b) of RINGS of the buffered values around column j: (0, b) is the vertical pair at b of
    d = 0 plus the centre row's pair at b; (a, a) the vertical pair at a of d = a; otherwise the vertical pair at a
    of d = b plus that at b of d = a (`niqe_kernels._RingTotals`). rows[3 + m] is the buffer row m rows down."""
    m3, m2, m1, c, p1, p2, p3 = rows
    return (
        _pair(buffer, m1, p1, 0, j) + buffer[c, 1, j],
        _pair(buffer, m1, p1, 1, j),
        _pair(buffer, m2, p2, 0, j) + buffer[c, 2, j],
        _pair(buffer, m1, p1, 2, j) + _pair(buffer, m2, p2, 1, j),
        _pair(buffer, m2, p2, 2, j),
        _pair(buffer, m3, p3, 0, j) + buffer[c, 3, j],
        _pair(buffer, m1, p1, 3, j) + _pair(buffer, m3, p3, 1, j),
        _pair(buffer, m2, p2, 3, j) + _pair(buffer, m3, p3, 2, j),
        _pair(buffer, m3, p3, 3, j),
    )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _mscn_integer(plane: np.ndarray, weights: np.ndarray, points: np.ndarray) -> np.ndarray:  # pragma: no cover
    """MSCN of a 0..255 integer-valued float64 plane (see `niqe_kernels.mscn_integer`).

    For each row, the horizontal pair sums x(j−d) + x(j+d) (d = 0: x itself) of x and of x² for the 2·RADIUS + 1
    rows around it, kept in a ring buffer of rows; each ring total is 2 to 4 of them, as `niqe_kernels._RingTotals`
    adds them. They are integers below 2^20 held in float64, so every sum and product up to the weighting is exact
    (the same integers in any order, converted to float64 as the numpy code converts its int16/int32 values).
    """
    r = 3
    h, w = plane.shape
    size = 2 * r + 1
    sums = np.empty((size, r + 1, w))
    squares = np.empty((size, r + 1, w))
    line = np.empty(w + 2 * r)
    w0, w1, w2, w3, w4, w5, w6, w7, w8 = weights
    n0, n1, n2, n3, n4, n5, n6, n7, n8 = points
    out = np.empty((h, w))
    for step in range(-r, h + r):
        # Fill the buffer row of padded row `step + r` (the source row clamped), then use the rows up to it.
        # Computed indices are unsigned (_U): numba then leaves out the wrap-around of negative indices, which
        # would keep LLVM from vectorising these loops.
        src = min(max(step, 0), h - 1)
        for j in range(r):
            line[j] = plane[src, 0]
            line[_U(w + r + j)] = plane[src, w - 1]
        for j in range(w):
            line[_U(j + r)] = plane[src, j]
        slot = (step + r) % size
        for j in range(w):
            v = line[_U(j + r)]
            sums[slot, 0, j] = v
            squares[slot, 0, j] = v * v
        for d in range(1, r + 1):
            for j in range(w):
                u, v = line[_U(j + r - d)], line[_U(j + r + d)]
                sums[slot, d, j] = u + v
                squares[slot, d, j] = u * u + v * v
        y = step - r  # the output row whose window ends at this buffer row
        if y < 0:
            continue
        rows = (y % size, (y + 1) % size, (y + 2) % size, (y + 3) % size, (y + 4) % size, (y + 5) % size, slot)
        centre, row = rows[3], out[y]
        for j in range(w):
            x = sums[centre, 0, j]
            t0, t1, t2, t3, t4, t5, t6, t7, t8 = _ring_totals(sums, rows, j)
            q0, q1, q2, q3, q4, q5, q6, q7, q8 = _ring_totals(squares, rows, j)
            # Per ring: S = Σ x_o − n·x and Q = Σ x_o² − x·(Σ x_o + S); then the float64 steps in ring order.
            s = t0 - n0 * x
            dev = s * w0
            var = (q0 - x * (t0 + s)) * w0
            s = t1 - n1 * x
            dev += s * w1
            var += (q1 - x * (t1 + s)) * w1
            s = t2 - n2 * x
            dev += s * w2
            var += (q2 - x * (t2 + s)) * w2
            s = t3 - n3 * x
            dev += s * w3
            var += (q3 - x * (t3 + s)) * w3
            s = t4 - n4 * x
            dev += s * w4
            var += (q4 - x * (t4 + s)) * w4
            s = t5 - n5 * x
            dev += s * w5
            var += (q5 - x * (t5 + s)) * w5
            s = t6 - n6 * x
            dev += s * w6
            var += (q6 - x * (t6 + s)) * w6
            s = t7 - n7 * x
            dev += s * w7
            var += (q7 - x * (t7 + s)) * w7
            s = t8 - n8 * x
            dev += s * w8
            var += (q8 - x * (t8 + s)) * w8
            var -= dev * dev
            row[j] = dev / (-1.0 - math.sqrt(abs(var)))
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _mscn_float(
    plane: np.ndarray, weights: np.ndarray, starts: np.ndarray, offset_y: np.ndarray, offset_x: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """MSCN of any float64 plane (see `niqe_kernels.mscn_float`), row by row, offsets in the numpy code's order."""
    r = 3
    h, w = plane.shape
    padded = _replicate_pad(plane, r)
    ring_sum, ring_square = np.empty(w), np.empty(w)
    dev, var = np.empty(w), np.empty(w)
    out = np.empty((h, w))
    for y in range(h):
        here = padded[y + r, r : r + w]
        for k in range(weights.shape[0]):
            for m in range(starts[k], starts[k + 1]):
                dy, dx = offset_y[m], offset_x[m]
                ahead = padded[y + r + dy, r + dx : r + dx + w]
                behind = padded[y + r - dy, r - dx : r - dx + w]
                for j in range(w):
                    a = ahead[j] - here[j]  # the difference plane at p
                    b = here[j] - behind[j]  # the difference plane at p − o
                    if m == starts[k]:
                        ring_sum[j] = a - b
                        ring_square[j] = a * a + b * b
                    else:
                        ring_sum[j] += a - b
                        ring_square[j] += a * a
                        ring_square[j] += b * b
            weight = weights[k]
            for j in range(w):
                if k == 0:
                    dev[j] = ring_sum[j] * weight
                    var[j] = ring_square[j] * weight
                else:
                    dev[j] += ring_sum[j] * weight
                    var[j] += ring_square[j] * weight
        _weighting_finish(dev, var, out[y])
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _half_columns(x: np.ndarray, first: np.ndarray, weights: np.ndarray) -> np.ndarray:  # pragma: no cover
    """out[i, j] = Σ_k weights[k] · x[first[i, k], j]: one ×0.5 pass down the rows, the products added in tap
    order (`niqe_kernels._half_rows`)."""
    out_rows, taps = first.shape
    width = x.shape[1]
    out = np.empty((out_rows, width))
    for i in range(out_rows):
        row = out[i]
        source = x[first[i, 0]]
        weight = weights[0]
        for j in range(width):
            row[j] = source[j] * weight
        for k in range(1, taps):
            source = x[first[i, k]]
            weight = weights[k]
            for j in range(width):
                row[j] += source[j] * weight
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _half_both(
    x: np.ndarray, rows: np.ndarray, row_weights: np.ndarray, cols: np.ndarray, col_weights: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    half_height = _half_columns(x, rows, row_weights)
    return np.ascontiguousarray(_half_columns(np.ascontiguousarray(half_height.T), cols, col_weights).T)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _array_k(here: np.ndarray, k: int, shifts: np.ndarray, block: int, values: np.ndarray) -> None:  # pragma: no cover
    """Array k of the block `here` (block² values, row after row) into values: 0 the block itself, k > 0 its
    product with the copy circularly shifted by shifts[k − 1] (one multiplication per value)."""
    size = block * block
    if k == 0:
        for m in range(size):
            values[m] = here[m]
        return
    dy, dx = shifts[k - 1, 0], shifts[k - 1, 1]
    offset = dy * block + dx  # > 0 for every shift (as niqe_blocks._shifted_product requires)
    wrap_from, wrap_to = (0, dx) if dx >= 0 else (block + dx, block)  # the columns whose shift wraps around
    # One product over the block with the flat offset of the shift, right wherever the shift does not wrap
    # around; then the rows and columns where it does are redone (as _shifted_product does). Unsigned indices
    # (_U): numba then leaves out the wrap-around of negative indices, which would keep LLVM from vectorising.
    for m in range(offset, size):
        values[_U(m)] = here[_U(m)] * here[_U(m - offset)]
    for i in range(block):
        i_from = (i - dy) % block
        for j in range(block) if i < dy else range(wrap_from, wrap_to):
            values[i * block + j] = here[i * block + j] * here[i_from * block + (j - dx) % block]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _split_sides(values: np.ndarray, below: np.ndarray, above: np.ndarray) -> tuple[int, int]:  # pragma: no cover
    """below = min(v, +0) and above = max(v, +0) as numpy gives them (+0 for either zero, NaN on both sides), and
    the count of each that is not zero (`niqe_blocks._Moments`)."""
    n_below = 0
    n_above = 0
    for m in range(values.shape[0]):
        v = values[m]
        low = v if (v < 0.0 or v != v) else 0.0
        high = v if (v > 0.0 or v != v) else 0.0
        below[m] = low
        above[m] = high
        n_below += low != 0.0
        n_above += high != 0.0
    return n_below, n_above


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _copy_block(mscn: np.ndarray, block: int, index: int, here: np.ndarray) -> None:  # pragma: no cover
    """Block `index` in MATLAB's order (down the columns) into here, row after row."""
    rows = mscn.shape[0] // block
    col, row = divmod(index, rows)
    top, left = row * block, col * block
    for i in range(block):
        y, start = _U(top + i), _U(i * block)
        for j in range(block):
            here[start + _U(j)] = mscn[y, _U(left + j)]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _block_sides(
    mscn: np.ndarray, block: int, first: int, n: int, k: int, shifts: np.ndarray, sides: np.ndarray, counts: np.ndarray
) -> None:  # pragma: no cover - compiled
    """`niqe_blocks.SidesKernel` for C-contiguous float64 planes."""
    here, values = np.empty(block * block), np.empty(block * block)
    for t in range(n):
        _copy_block(mscn, block, first + t, here)
        _array_k(here, k, shifts, block, values)
        counts[0, t], counts[1, t] = _split_sides(values, sides[0, t], sides[1, t])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _dot_sum(a: np.ndarray, b: np.ndarray, pieces: int) -> float:  # pragma: no cover - compiled
    """`niqe_blocks._row_dots` of one row a against b (as long as a, or as long as one piece, like its `ones`): the
    BLAS dot product of each piece (numba's np.dot calls BLAS ddot, as numpy's vecdot does), then numpy's sum over
    the pieces, which for fewer than 8 adds them in order to 0.0."""
    length = a.shape[0] // pieces
    total = 0.0
    for p in range(pieces):
        start = p * length
        other = b[start : start + length] if b.shape[0] == a.shape[0] else b[:length]
        total += np.dot(a[start : start + length], other)
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _block_moments(
    mscn: np.ndarray, block: int, shifts: np.ndarray, pieces: int, moments: np.ndarray
) -> None:  # pragma: no cover - compiled
    """The moments (1 + len(SHIFTS), 5, n_blocks) of every block's arrays, as `niqe_blocks.block_features` gathers
    them (Σ v² below, count below, Σ v² above, count above, Σ above − Σ below), in one call for the whole plane."""
    size = block * block
    here, values, below, above = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    ones = np.ones(size // pieces)
    for t in range(moments.shape[2]):
        _copy_block(mscn, block, t, here)
        for k in range(shifts.shape[0] + 1):
            _array_k(here, k, shifts, block, values)
            n_below, n_above = _split_sides(values, below, above)
            moments[k, 0, t] = _dot_sum(below, below, pieces)
            moments[k, 1, t] = n_below
            moments[k, 2, t] = _dot_sum(above, above, pieces)
            moments[k, 3, t] = n_above
            moments[k, 4, t] = _dot_sum(above, ones, pieces) - _dot_sum(below, ones, pieces)


def block_sides(
    mscn: np.ndarray, block: int, first: int, n: int, k: int, sides: np.ndarray, counts: np.ndarray
) -> None:
    """`niqe_blocks.SidesKernel`, compiled: the same sides and counts as the numpy code's."""
    _block_sides(_plane(mscn), block, first, n, k, _shift_table(), sides, counts)


@functools.cache
def blas_dots_agree() -> bool:
    """Whether numba's np.dot (the BLAS that scipy links) gives the bits of numpy's vecdot (numpy's BLAS) on random
    rows of several lengths: then the whole block computation can run compiled. Checked, not assumed: two BLAS
    builds may sum in different orders."""
    rng = np.random.default_rng(0)
    for n in (1, 7, 33, 1000, 2304, 4608, 8192):
        for _ in range(4):
            a = rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6, n)
            b = rng.standard_normal(n)
            if _dot_sum(a, b, 1) != float(np.vecdot(a, b)) + 0.0:
                return False
    return True


def _compiled_sums(n: int) -> int | None:
    """The pieces `niqe_blocks._row_dots` cuts a row of n values into, if `_block_moments` can sum like it: the
    rows are cut for BLAS (not left to einsum) into fewer than 8 pieces (numpy adds those in order), and the two
    BLAS libraries agree. None otherwise."""
    pieces = niqe_blocks.dot_pieces(n)
    if n // pieces > niqe_blocks.DOT_LENGTH or pieces >= 8 or not hasattr(np, "vecdot") or not blas_dots_agree():
        return None
    return pieces


@functools.cache
def _shift_table() -> np.ndarray:
    return np.array(SHIFTS, dtype=np.int64)


def block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """`niqe_blocks.block_features`, compiled: same bits. The moments of all blocks come from one call where the
    sums can be taken compiled (`_compiled_sums`); otherwise each batch's sides and counts come from one call and
    numpy sums them."""
    plane = _plane(mscn)
    pieces = _compiled_sums(block * block)
    if pieces is None:
        return niqe_blocks.block_features(plane, block, block_sides)
    h, w = plane.shape
    moments = np.empty((1 + len(SHIFTS), 5, (h // block) * (w // block)))
    _block_moments(plane, block, _shift_table(), pieces, moments)
    return niqe_blocks.features(moments, block)


@functools.cache
def _half_sources(length: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(source index per output and tap (n_out, taps), weight per tap) of MATLAB's ×0.5 along `length`, from
    `niqe_kernels._half_taps` (the mirrored copy's index mapped back to the plane), or None if irregular."""
    taps = _half_taps(length)
    if taps is None:
        return None
    pad, pairs = taps
    out = math.ceil(length * 0.5)
    mirrored = np.arange(-pad, length + pad)
    mirrored = np.where(mirrored < 0, -mirrored - 1, np.where(mirrored >= length, 2 * length - mirrored - 1, mirrored))
    first = np.array([[mirrored[start + 2 * i] for start, _ in pairs] for i in range(out)], dtype=np.int64)
    return first, np.array([weight for _, weight in pairs], dtype=np.float64)


def _plane(x: np.ndarray) -> np.ndarray:
    """The one layout the kernels are compiled for: C-contiguous float64."""
    return np.ascontiguousarray(x, dtype=np.float64)


def mscn_integer(plane: np.ndarray) -> np.ndarray:
    """`niqe_kernels.mscn_integer`, compiled: same bits."""
    return _mscn_integer(_plane(plane), *_integer_tables())


def mscn_float(plane: np.ndarray) -> np.ndarray:
    """`niqe_kernels.mscn_float`, compiled: same bits."""
    return _mscn_float(_plane(plane), *_float_tables())


def imresize_half(x: np.ndarray) -> np.ndarray:
    """`niqe_kernels.imresize_half`, compiled: same bits (an odd dimension takes the numpy code)."""
    rows, cols = _half_sources(x.shape[0]), _half_sources(x.shape[1])
    if rows is None or cols is None:
        from sreval.metrics.niqe_kernels import imresize_half as numpy_imresize_half

        return numpy_imresize_half(x)
    return _half_both(_plane(x), *rows, *cols)

"""MATLAB-compatible `imresize(img, scale, 'bicubic')` in torch.

Why not PIL/OpenCV/`torch.nn.functional.interpolate`: none of them matches MATLAB, and every published ×4
table was made with MATLAB. MATLAB's algorithm, reproduced here step by step:

- cubic kernel with a = −0.5 (Keys);
- when downscaling, the kernel is stretched by 1/scale (antialiasing), so ×1/4 uses a 16-tap-wide kernel;
- output pixel x maps to input coordinate u = x/scale + ½(1 − 1/scale) (1-based);
- out-of-range taps are mirrored ('symmetric' border, the edge pixel repeated once);
- the dimension with the smaller scale goes first (height first for equal scales);
- each output value is the sum over taps, in tap order, of weight × input, in float64.

Variants (the only thing the published test sets disagree on):
- ``"uint8"``: uint8 input; MATLAB rounds half away from zero and clamps to 0..255 after *each* pass
  (EDSR/SwinIR/RCAN test sets, SelfExSR);
- ``"double"``: ``imresize(im2double(img))`` then ``im2uint8``: one rounding at the end (BasicSR/ESRGAN).

``border="replicate"`` clamps instead of mirroring; it exists only because SelfExSR's LR files were made
that way (bit-exact to their files), never use it for new data.

Speed without changing a bit: when a pass repeats (integer factors: ×f has f phases of fixed weights, ×1/f one;
each advances the input by a fixed step), every tap is a strided view of the input rather than a gather, the
same products are added in the same order, and the rounding runs on each block of output while it is in the
cache. Any other pass (×1.7, most `size=`) takes the gather route. `tests/test_imresize_fast.py` holds the
previous formulation and compares bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from sreval.errors import ParameterError, SrevalError
from sreval.matlab.rounding import round_clamp_uint8_range_

Variant = Literal["uint8", "double"]
Border = Literal["symmetric", "replicate"]
VARIANTS: tuple[Variant, ...] = ("uint8", "double")


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = −0.5, as in MATLAB's imresize."""
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return near + far


def _kernel_taps(out_length: int, scale: float, antialiasing: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (out, taps) float64 and 0-based input positions (out, taps) before the border folds them in."""
    kernel_width = 4.0
    stretch = scale < 1 and antialiasing
    if stretch:
        kernel_width = kernel_width / scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * cubic(scale * distance) if stretch else cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return weights, indices.long() - 1


def _border_index(zero_based: torch.Tensor, in_length: int, border: Border) -> torch.Tensor:
    """The input index that MATLAB reads for each 0-based position, inside or outside the image."""
    if border == "symmetric":
        # MATLAB: aux = [1:n, n:-1:1]; indices = aux(mod(indices - 1, 2n) + 1)
        period = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
        return period[torch.remainder(zero_based, 2 * in_length)]
    if border == "replicate":
        return zero_based.clamp(0, in_length - 1)
    raise ParameterError("border", f"unknown border {border!r}; allowed: 'symmetric', 'replicate'")


def contributions(
    in_length: int, out_length: int, scale: float, *, antialiasing: bool = True, border: Border = "symmetric"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (out, taps) float64 and 0-based input indices (out, taps) for one dimension.

    A literal transcription of MATLAB's `contributions` so that every weight is the same double (in two
    steps, the kernel and the border, because the strided route needs the positions before the border).
    """
    weights, positions = _kernel_taps(out_length, scale, antialiasing)
    indices = _border_index(positions, in_length, border)
    # MATLAB drops taps whose weight is zero for every output pixel; this only changes speed.
    keep = weights.ne(0).any(dim=0)
    return weights[:, keep], indices[:, keep]


#: Longest repeat (in outputs) that the strided route looks for: ×f enlargements repeat every f outputs.
_MAX_PERIOD = 8
#: On the CPU a pass runs in blocks of outputs whose input rows, one phase's outputs and the scratch for one tap's
#: products hold about this many float64 values together (4 MiB), so that all the taps of a block find them in
#: the cache instead of streaming the whole image from memory once per tap. Smaller blocks cost more calls (a
#: few µs each); on a 2-core EPYC (1 MiB L2 per core, 32 MiB L3) 2¹⁸..2²⁰ were the fastest for ×4 and ×1/4.
_CPU_BLOCK_VALUES = 1 << 19

Finish = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class _Strided:
    """A pass whose taps are strided slices of the input extended by its border (no gathering per tap).

    Output o = period·m + p (phase p, cycle m) reads tap k at position starts[p][k] + step·m of the extended input,
    whose position j holds input row source[j], which is row j + offset inside the input. weights[p] holds
    phase p's tap weights: one float per tap where every output of the phase has the same double, else a
    (taps, outputs of the phase) tensor.
    """

    out_length: int
    period: int
    step: int
    offset: int
    source: torch.Tensor
    starts: tuple[tuple[int, ...], ...]
    weights: tuple[tuple[float, ...] | torch.Tensor, ...]

    def count(self, phase: int) -> int:
        return len(range(phase, self.out_length, self.period))


def _strided_layout(
    weights: torch.Tensor, positions: torch.Tensor, indices: torch.Tensor, in_length: int, border: Border
) -> _Strided | None:
    """The strided form of a pass whose positions advance by a constant step every `period` outputs (integer
    factors: ×f repeats every f outputs, ×1/f advances f inputs per output); None for any other pass.

    Nothing is assumed from the scale: the structure is read off the positions, and what the strided views will
    read is checked against the indices of `contributions`, so a pass without it keeps the gather route.
    """
    out_length = positions.shape[0]
    found = (1, 1) if out_length == 1 else None
    for period in range(1, min(_MAX_PERIOD, out_length - 1) + 1):
        advance = positions[period:] - positions[:-period]
        step = int(advance[0, 0])
        if step > 0 and bool((advance == step).all()):
            found = (period, step)
            break
    if found is None:
        return None
    period, step = found
    offset = int(positions.min())
    # The border's own mapping over every position read: for a 1-3 px input it wraps around several times.
    raw = torch.arange(offset, int(positions.max()) + 1)
    source = _border_index(raw, in_length, border)
    inside = (raw >= 0) & (raw < in_length)
    if not torch.equal(source[inside], raw[inside]):  # blocks inside the input read it without a copy
        return None
    starts = positions[:period] - offset
    phase_weights: list[tuple[float, ...] | torch.Tensor] = []
    for phase in range(period):
        cycles = torch.arange(len(range(phase, out_length, period)))
        if not torch.equal(source[starts[phase][None, :] + step * cycles[:, None]], indices[phase::period]):
            return None
        rows = weights[phase::period]
        shared = torch.equal(rows.view(torch.int64), rows[:1].view(torch.int64).expand_as(rows))  # bits, ±0 too
        phase_weights.append(tuple(rows[0].tolist()) if shared else rows.t().contiguous())
    starts_list: list[list[int]] = starts.tolist()
    return _Strided(out_length, period, step, offset, source, tuple(map(tuple, starts_list)), tuple(phase_weights))


@dataclass(frozen=True)
class _Plan:
    weights: torch.Tensor
    indices: torch.Tensor
    strided: _Strided | None


@functools.lru_cache(maxsize=256)
def _plan(in_length: int, out_length: int, scale: float, antialiasing: bool, border: Border) -> _Plan:
    """How one dimension is resized; cached, because a benchmark resizes many images of few sizes."""
    weights, indices = contributions(in_length, out_length, scale, antialiasing=antialiasing, border=border)
    all_weights, positions = _kernel_taps(out_length, scale, antialiasing)
    positions = positions[:, all_weights.ne(0).any(dim=0)]  # the taps that `contributions` keeps
    return _Plan(weights, indices, _strided_layout(weights, positions, indices, in_length, border))


def _gather_pass(x: torch.Tensor, dim: int, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Apply one pass along `dim`, summing taps in order like MATLAB's MEX loop (bit-exactness needs it).

    The resized dimension is first made the row dimension, so each tap gathers whole contiguous rows.
    """
    rows = x.movedim(dim, -2).contiguous()
    weights = weights.to(x.device)
    indices = indices.to(x.device)
    out = rows.index_select(-2, indices[:, 0]) * weights[:, 0, None]
    for k in range(1, weights.shape[1]):
        out.add_(rows.index_select(-2, indices[:, k]) * weights[:, k, None])
    return out.movedim(-2, dim)


def _rows(x: torch.Tensor, start: int, count: int, step: int = 1) -> torch.Tensor:
    """The view of rows start, start + step, ... (`count` of them) of (N, C, H, W) x."""
    return x[:, :, start : start + step * (count - 1) + 1 : step]


def _float64_rows(x: torch.Tensor, im2double: bool) -> torch.Tensor:
    """x as float64 with contiguous rows, copied only where it is not; `im2double`: uint8 x divided by 255."""
    if x.dtype != torch.float64:
        x = x.to(torch.float64, memory_format=torch.contiguous_format)
        return x.div_(255) if im2double else x
    return x if x.stride(-1) == 1 else x.contiguous()


def _strided_pass(x: torch.Tensor, layout: _Strided, im2double: bool, finish: Finish | None) -> torch.Tensor:
    """The pass down the rows of (N, C, H, W) x: the same sums as `_gather_pass`, term by term and in tap order
    (each product rounded, then added: never a fused multiply-add), every tap a strided view of the input rows.

    It runs in blocks of cycles. A block's input rows are a view of x where they lie inside it and x is float64
    with contiguous rows, else a copy that folds in the border, the conversion to float64 (and `im2double`) or
    the transposition of a pass along the rows. `finish` (the rounding) is applied to each block's outputs
    while they are still in the cache.
    """
    n, c, in_length, width = x.shape
    out = x.new_empty((n, c, layout.out_length, width), dtype=torch.float64)
    period, step = layout.period, layout.step
    cycles = layout.count(0)
    # A cycle reads input rows reach_low + step·m ... reach_high − 1 + step·m (over all phases and taps).
    reach_low = min(min(starts) for starts in layout.starts)
    reach_high = max(max(starts) for starts in layout.starts) + 1
    plane_row = n * c * width
    if x.device.type == "cpu":
        # b cycles read step·b + (reach) input rows and write b rows per phase, plus b rows of scratch
        per_block = max(1, (_CPU_BLOCK_VALUES // plane_row - (reach_high - reach_low)) // (step + 2))
    else:
        per_block = cycles
    source = layout.source.to(x.device)
    weights = [w if isinstance(w, tuple) else w.to(x.device) for w in layout.weights]
    scratch = x.new_empty(min(per_block, cycles) * plane_row, dtype=torch.float64)
    for first in range(0, cycles, per_block):
        end = min(first + per_block, cycles)
        low, high = reach_low + step * first, reach_high + step * (end - 1)
        if low + layout.offset >= 0 and high + layout.offset <= in_length:
            block = _float64_rows(x[:, :, low + layout.offset : high + layout.offset], im2double)
        else:
            block = _float64_rows(x.index_select(2, source[low:high]), im2double)
        for phase, (starts, phase_weights) in enumerate(zip(layout.starts, weights, strict=True)):
            count = min(end, layout.count(phase)) - first
            if count <= 0:
                continue
            target = _rows(out, phase + period * first, count, period)
            products = scratch[: target.numel()].view(target.shape)
            for k, start in enumerate(starts):
                tap = _rows(block, start + step * first - low, count, step)
                weight = (
                    phase_weights[k]
                    if isinstance(phase_weights, tuple)
                    else phase_weights[k, first : first + count, None]
                )
                if k == 0:
                    torch.mul(tap, weight, out=target)
                else:
                    torch.mul(tap, weight, out=products)
                    target.add_(products)
            if finish is not None:
                finish(target)
    return out


def _resize_pass(x: torch.Tensor, dim: int, plan: _Plan, im2double: bool, finish: Finish | None) -> torch.Tensor:
    """One pass along dim 2 (rows) or 3 (columns) of (N, C, H, W) x read as float64 (uint8 x / 255 with
    `im2double`), then `finish` in place (if any).

    A pass along the rows runs as a pass down the rows of the transposed view: strided views along the last
    dimension would be neither contiguous nor vectorised, and the result is returned as a transposed view.
    """
    if plan.strided is not None:
        rows = x if dim == 2 else x.transpose(2, 3)
        out = _strided_pass(rows, plan.strided, im2double, finish)
        return out if dim == 2 else out.transpose(2, 3)
    x = x if x.dtype == torch.float64 else _float64_rows(x, im2double)
    out = _gather_pass(x, dim, plan.weights, plan.indices)
    return out if finish is None else finish(out)


def _output_size(height: int, width: int, scale: float | None, size: tuple[int, int] | None) -> tuple[int, int]:
    if (scale is None) == (size is None):
        raise ParameterError("scale", "imresize needs exactly one of scale and size")
    if size is not None:
        out_h, out_w = size
    else:
        assert scale is not None
        if not scale > 0:
            raise ParameterError("scale", f"imresize scale must be positive, got {scale}")
        out_h, out_w = math.ceil(height * scale), math.ceil(width * scale)
    if out_h < 1 or out_w < 1:
        raise SrevalError(f"imresize output size {out_h}x{out_w} from {height}x{width} is empty")
    return out_h, out_w


def _passes(
    x: torch.Tensor,
    scale: float | None,
    size: tuple[int, int] | None,
    border: Border,
    antialiasing: bool,
    *,
    im2double: bool = False,
    after_first: Finish | None = None,
    after_second: Finish | None = None,
) -> torch.Tensor:
    """The two 1-D passes on x (N, C, H, W), in float64: x is converted as it is read, divided by 255 with
    `im2double` (uint8 x). Each pass is followed by its `after_` step (the roundings: in place on the pass's
    new tensor, block by block on the strided route)."""
    in_h, in_w = x.shape[-2:]
    out_h, out_w = _output_size(in_h, in_w, scale, size)
    scale_h = scale if scale is not None else out_h / in_h
    scale_w = scale if scale is not None else out_w / in_w
    passes = [(2, in_h, out_h, scale_h), (3, in_w, out_w, scale_w)]
    passes.sort(key=lambda p: p[3])  # stable: height first when the scales are equal, as MATLAB does
    for number, (dim, in_len, out_len, s) in enumerate(passes):
        plan = _plan(in_len, out_len, s, antialiasing, border)
        x = _resize_pass(x, dim, plan, im2double and number == 0, after_second if number else after_first)
    return x


def _im2uint8_(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's im2uint8 of float64 x, in place: ×255, round half away from zero, clamp to 0..255."""
    return round_clamp_uint8_range_(x.mul_(255))


def _check_batch(img: torch.Tensor) -> None:
    if img.dim() != 4:
        raise SrevalError(f"imresize expects shape (N, C, H, W), got {tuple(img.shape)}")


def imresize(
    img: torch.Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    variant: Variant = "uint8",
    border: Border = "symmetric",
    antialiasing: bool = True,
) -> torch.Tensor:
    """Resize a uint8 image batch (N, C, H, W) exactly like MATLAB's bicubic `imresize`; returns uint8.

    `scale` is the factor (0.25 for ×4 down, 4 for ×4 up); `size` = (H, W) instead. Works on any device.
    """
    if img.dtype != torch.uint8:
        raise SrevalError(f"imresize expects a uint8 image tensor, got {img.dtype}")
    _check_batch(img)
    if variant not in VARIANTS:
        raise ParameterError("variant", f"unknown imresize variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    if variant == "uint8":
        rounding = round_clamp_uint8_range_
        x = _passes(img, scale, size, border, antialiasing, after_first=rounding, after_second=rounding)
    else:
        x = _passes(img, scale, size, border, antialiasing, im2double=True, after_second=_im2uint8_)
    return x.to(torch.uint8)


def imresize_float(
    x: torch.Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    border: Border = "symmetric",
    antialiasing: bool = True,
) -> torch.Tensor:
    """MATLAB `imresize` of a double image (N, C, H, W): float64 out, no rounding or clamping (NIQE's pyramid)."""
    if not x.is_floating_point():
        raise SrevalError(f"imresize_float expects a floating-point tensor, got {x.dtype}; use imresize for uint8")
    _check_batch(x)
    return _passes(x, scale, size, border, antialiasing)

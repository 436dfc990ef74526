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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from sreval.errors import ParameterError, SrevalError
from sreval.matlab.rounding import matlab_round

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


def contributions(
    in_length: int, out_length: int, scale: float, *, antialiasing: bool = True, border: Border = "symmetric"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (out, taps) float64 and 0-based input indices (out, taps) for one dimension.

    A literal transcription of MATLAB's `contributions` so that every weight is the same double.
    """
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

    zero_based = indices.long() - 1
    if border == "symmetric":
        # MATLAB: aux = [1:n, n:-1:1]; indices = aux(mod(indices - 1, 2n) + 1)
        period = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
        zero_based = period[torch.remainder(zero_based, 2 * in_length)]
    elif border == "replicate":
        zero_based = zero_based.clamp(0, in_length - 1)
    else:
        raise ParameterError("border", f"unknown border {border!r}; allowed: 'symmetric', 'replicate'")

    # MATLAB drops taps whose weight is zero for every output pixel; this only changes speed.
    keep = weights.ne(0).any(dim=0)
    return weights[:, keep], zero_based[:, keep]


def _resize_dim(x: torch.Tensor, dim: int, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
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
    after_each: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The two 1-D passes on float64 x (N, C, H, W); `after_each` (rounding) is applied after each pass."""
    in_h, in_w = x.shape[-2:]
    out_h, out_w = _output_size(in_h, in_w, scale, size)
    scale_h = scale if scale is not None else out_h / in_h
    scale_w = scale if scale is not None else out_w / in_w
    passes = [(2, in_h, out_h, scale_h), (3, in_w, out_w, scale_w)]
    passes.sort(key=lambda p: p[3])  # stable: height first when the scales are equal, as MATLAB does
    for dim, in_len, out_len, s in passes:
        weights, indices = contributions(in_len, out_len, s, antialiasing=antialiasing, border=border)
        x = _resize_dim(x, dim, weights, indices)
        if after_each is not None:
            x = after_each(x)
    return x


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
        def to_uint8_range(y: torch.Tensor) -> torch.Tensor:
            return matlab_round(y).clamp_(0, 255)

        x = _passes(img.to(torch.float64), scale, size, border, antialiasing, to_uint8_range)
    else:
        x = _passes(img.to(torch.float64) / 255, scale, size, border, antialiasing)  # im2double
        x = matlab_round(x * 255).clamp_(0, 255)  # im2uint8
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
    return _passes(x.to(torch.float64), scale, size, border, antialiasing)

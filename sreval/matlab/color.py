"""The luma plane that PSNR/SSIM are computed on.

BT.601 studio-range Y, as MATLAB's `rgb2ycbcr`: Y = 16 + (65.481 R + 128.553 G + 24.966 B) for R, G, B in [0, 1].
Two named variants:

- ``"matlab"`` (default): MATLAB converts a uint8 image to a uint8 Y, i.e. rounds. Published tables and
  SelfExSR's files were made this way (0.002–0.013 dB and ~0.001 SSIM below the float variant);
- ``"float"``: no rounding (BasicSR's `bgr2ycbcr(..., y_only=True)` on float input).

Full-range luma (YIQ, rgb2gray) is a different metric (it shifts PSNR by 20·log10(219/255)) and is not offered
for the published protocol. A single-channel image is scored on its own values.
"""

from __future__ import annotations

from typing import Literal

import torch

from sreval.errors import ParameterError, SrevalError
from sreval.matlab.rounding import matlab_round, round_clamp_uint8_range_

YMode = Literal["matlab", "float"]
Y_MODES: tuple[YMode, ...] = ("matlab", "float")
_BT601 = (65.481, 128.553, 24.966)
_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _check(img: torch.Tensor, mode: YMode) -> None:
    if mode not in Y_MODES:
        raise ParameterError("mode", f"unknown Y mode {mode!r}; allowed: {', '.join(Y_MODES)}")
    if img.dim() != 4 or img.shape[1] != 3:
        raise SrevalError(f"expected an RGB batch (N, 3, H, W), got {tuple(img.shape)}")


def _matlab_uint8(x: torch.Tensor, mode: YMode) -> torch.Tensor:
    """MATLAB returns uint8 for uint8 input: round half away from zero (values are non-negative here)."""
    if mode == "float":
        return x
    return matlab_round(x).clamp_(0, 255)


def _weighted_channels(img: torch.Tensor, weights: tuple[float, float, float]) -> torch.Tensor:
    """(w0·R + w1·G) + w2·B of a uint8 batch as float64 (N, 1, H, W), in two buffers instead of a float copy of
    the image and a new tensor per operation: the same products and sums in the same order, so the same bits
    (a uint8 value converts to float64 exactly)."""
    n, _, h, w = img.shape
    total = torch.empty((n, 1, h, w), dtype=torch.float64, device=img.device)
    product = torch.empty_like(total)
    total.copy_(img[:, 0:1]).mul_(weights[0])
    for c in (1, 2):
        total.add_(product.copy_(img[:, c : c + 1]).mul_(weights[c]))
    return total


def _uint8_result(x: torch.Tensor, mode: YMode) -> torch.Tensor:
    """As `_matlab_uint8`, in place, for the 0..255 values a weighted sum of uint8 channels gives."""
    return x if mode == "float" else round_clamp_uint8_range_(x)


def rgb_to_y(img: torch.Tensor, mode: YMode = "matlab") -> torch.Tensor:
    """(N, 3, H, W) with values in 0..255 (uint8 or float) → Y as float64 (N, 1, H, W) in 0..255."""
    _check(img, mode)
    if img.dtype == torch.uint8:  # every output and reference image: the fast path (same operations, in place)
        return _uint8_result(_weighted_channels(img, _BT601).div_(255).add_(16), mode)
    x = img.to(torch.float64)
    y = 16 + (_BT601[0] * x[:, 0:1] + _BT601[1] * x[:, 1:2] + _BT601[2] * x[:, 2:3]) / 255
    return _matlab_uint8(y, mode)


def rgb_to_gray(img: torch.Tensor, mode: YMode = "matlab") -> torch.Tensor:
    """MATLAB `rgb2gray` (full range), float64 (N, 1, H, W). Only used to compare an RGB output with a
    single-channel reference, where studio-range Y would be on a different scale from the reference's values."""
    _check(img, mode)
    if img.dtype == torch.uint8:
        return _uint8_result(_weighted_channels(img, _GRAY), mode)
    x = img.to(torch.float64)
    gray = _GRAY[0] * x[:, 0:1] + _GRAY[1] * x[:, 1:2] + _GRAY[2] * x[:, 2:3]
    return _matlab_uint8(gray, mode)


def luma_pair(sr: torch.Tensor, hr: torch.Tensor, mode: YMode = "matlab") -> tuple[torch.Tensor, torch.Tensor]:
    """The two planes that are compared, as float64 (N, 1, H, W).

    RGB vs RGB → BT.601 Y of both. A single-channel reference is scored on its own values; an RGB output
    compared with it is reduced with rgb2gray, which equals its channel when the three channels are equal.
    """

    def plane(img: torch.Tensor, gray_reference: bool) -> torch.Tensor:
        if img.shape[1] == 1:
            return img.to(torch.float64)
        if img.shape[1] != 3:
            raise SrevalError(f"images must have 1 or 3 channels, got {img.shape[1]}")
        return rgb_to_gray(img, mode) if gray_reference else rgb_to_y(img, mode)

    gray = hr.shape[1] == 1 or sr.shape[1] == 1
    return plane(sr, gray), plane(hr, gray)

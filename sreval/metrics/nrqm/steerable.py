"""NRQM's frequency-domain tools, as pyiqa computes them: the complex steerable pyramid (2 scales × 6
orientations) of the global-frequency features and the float32 bicubic enlargement of its bands."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sreval.errors import SrevalError

#: Orientations per scale of the steerable pyramid.
N_BANDS = 6


def as_f32_in_f64(a: np.ndarray[Any, Any]) -> torch.Tensor:
    """pyiqa builds several constants in float64, stores them as float32 and multiplies them into float64."""
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(torch.float32).to(torch.float64)


def _raised_cosine() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Radial transition (width 1 octave, position −½): abscissae in log2 radius and cos² values."""
    n = 256
    x = np.pi * np.arange(-n - 1, 2) / 2 / n
    y = np.cos(x) ** 2
    y[0] = y[1]
    y[n + 2] = y[n + 1]
    x = -0.5 + 2 * 1 / np.pi * (x + np.pi / 4)
    return x, y


def _freq_grid(h: int, w: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """log2 radius and angle of the centred DFT grid (radius at DC copied from its left neighbour)."""
    fy = np.linspace(-(h // 2) / (h / 2), (h // 2) / (h / 2) - (1 - h % 2) * 2 / h, num=h)
    fx = np.linspace(-(w // 2) / (w / 2), (w // 2) / (w / 2) - (1 - w % 2) * 2 / w, num=w)
    xv, yv = np.meshgrid(fx, fy)
    angle = np.arctan2(yv, xv)
    rad = np.sqrt(xv**2 + yv**2)
    rad[h // 2][w // 2] = rad[h // 2][w // 2 - 1]
    return np.log2(rad), angle


def _mask(grid: np.ndarray[Any, Any], xs: np.ndarray[Any, Any], ys: np.ndarray[Any, Any]) -> torch.Tensor:
    return as_f32_in_f64(np.interp(grid.ravel(), xs, ys).reshape(grid.shape))


def _angle_table() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Angular profile cos^(K−1) of a K-band steerable pyramid (one lobe), on a 1024-per-π table."""
    lut = 1024
    xcosn = np.pi * np.arange(-(2 * lut + 1), lut + 2) / lut
    alpha = (xcosn + np.pi) % (2 * np.pi) - np.pi
    order = N_BANDS - 1
    const = (
        np.power(2, 2 * order) * np.square(float(math.factorial(order))) / (N_BANDS * float(math.factorial(2 * order)))
    )
    ycosn = 2 * np.sqrt(const) * np.power(np.cos(xcosn), order) * (np.abs(alpha) < np.pi / 2)
    return xcosn, ycosn


def steerable_pyramid(img: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Complex steerable pyramid, 2 scales × 6 orientations (matlabPyrTools' buildSCFpyr as pyiqa ports it).

    Returns the real high-pass residual (H, W) and the real parts of the 12 oriented bands (finer scale
    first). Everything is done in the centred DFT domain with float32-valued masks, as pyiqa does."""
    h, w = img.shape
    log_rad, angle = _freq_grid(h, w)
    xr, yr = _raised_cosine()
    yr = np.sqrt(yr)
    yir = np.sqrt(1 - yr**2)
    xcosn, ycosn = _angle_table()
    # (−i)^(K−1) rotates the analytic band; numpy's power gives exactly −1j for K = 6.
    rot = complex(np.power(complex(0, -1), N_BANDS - 1))

    dft = torch.fft.fftshift(torch.fft.fft2(img))
    hi0 = torch.fft.ifft2(torch.fft.ifftshift(dft * _mask(log_rad, xr, yr))).real
    lodft = dft * _mask(log_rad, xr, yir)

    bands: list[torch.Tensor] = []
    abs_yir = np.abs(np.sqrt(1 - yr**2))
    for level in range(2):
        xr = xr - 1.0  # one octave down
        himask = _mask(log_rad, xr, yr)
        for b in range(N_BANDS):
            anglemask = _mask(angle, xcosn + np.pi * b / N_BANDS, ycosn)
            band = lodft * anglemask * himask
            band = torch.complex(
                rot.real * band.real - rot.imag * band.imag, rot.real * band.imag + rot.imag * band.real
            )
            bands.append(torch.fft.ifft2(torch.fft.ifftshift(band)).real)
        if level == 1:
            break
        dims = np.array(lodft.shape)
        start = (np.ceil((dims + 0.5) / 2) - np.ceil((np.ceil((dims - 0.5) / 2) + 0.5) / 2)).astype(int)
        end = (start + np.ceil((dims - 0.5) / 2)).astype(int)
        log_rad = log_rad[start[0] : end[0], start[1] : end[1]]
        angle = angle[start[0] : end[0], start[1] : end[1]]
        lodft = _mask(log_rad, xr, abs_yir) * lodft[start[0] : end[0], start[1] : end[1]]
    return hi0, bands


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic (a = −0.5), evaluated in the dtype of x with pyiqa's operation order."""
    a = -0.5
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax * ax2
    near = ((a + 2) * ax3 - (a + 3) * ax2 + 1) * ax.le(1).to(x.dtype)
    far = ((a * ax3) - (5 * a * ax2) + (8 * a * ax) - (4 * a)) * (ax.gt(1) & ax.le(2)).to(x.dtype)
    return near + far


def _resize_dim_f32(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Bicubic enlargement along dim 0 or 1 of a float32 (H, W) tensor, as pyiqa's imresize computes it:
    float32 weights, half-sample symmetric border."""
    n_in = x.shape[dim]
    if size == n_in:
        return x
    scale = size / n_in
    if scale < 1:
        raise SrevalError(f"internal: NRQM only enlarges bands, asked {n_in} -> {size}")
    taps = 4 + 2
    pos = (torch.linspace(0, size - 1, steps=size, dtype=torch.float32) + 0.5) / scale - 0.5
    base = pos.floor() - (taps // 2) + 1
    dist = pos - base
    weight = _cubic(torch.stack([dist - k for k in range(taps)]))
    weight = weight / weight.sum(dim=0, keepdim=True)
    first = base.long()
    pre = max(int(-first.min()), 0)
    post = max(int(first.max()) + taps - 1 - n_in + 1, 0)
    idx = torch.arange(-pre, n_in + post)
    idx = torch.where(idx < 0, -idx - 1, idx)
    idx = torch.where(idx >= n_in, 2 * n_in - 1 - idx, idx)
    rows = first + pre
    # Products first, then one sum over the taps, laid out as pyiqa's (taps, H, W) tensor: torch's reduction
    # order is part of the float32 result.
    # (index_select rather than x[idx]: the same gather, without the cost of torch's general indexing.)
    padded = x.index_select(dim, idx)
    w = [weight[k][:, None] if dim == 0 else weight[k][None, :] for k in range(taps)]
    prods = [padded.index_select(dim, rows + k) * w[k] for k in range(taps)]
    return torch.stack(prods).sum(dim=0)


def resize_f32(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """pyiqa's imresize(x, sizes=size) for enlargement: computed in float32 (its cast), returned as float64."""
    y = x.to(torch.float32)
    y = _resize_dim_f32(y, 0, size[0])
    y = _resize_dim_f32(y, 1, size[1])
    return y.to(torch.float64)

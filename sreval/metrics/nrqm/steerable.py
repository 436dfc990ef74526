"""NRQM's frequency-domain tools, as pyiqa computes them: the complex steerable pyramid (2 scales × 6
orientations) of the global-frequency features and the float32 bicubic enlargement of its bands."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
import scipy.fft
import torch

from sreval.errors import SrevalError
from sreval.metrics.nrqm.parallel import SERIAL, Pieces

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


def _freq_grid(h: int, w: int, centred: bool = True) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """log2 radius and angle of the DFT grid (radius at DC copied from its left neighbour in the centred
    layout), centred or in the DFT's own order: the same values either way, the axes rolled by half."""
    fy = np.linspace(-(h // 2) / (h / 2), (h // 2) / (h / 2) - (1 - h % 2) * 2 / h, num=h)
    fx = np.linspace(-(w // 2) / (w / 2), (w // 2) / (w / 2) - (1 - w % 2) * 2 / w, num=w)
    if not centred:
        fy, fx = np.fft.ifftshift(fy), np.fft.ifftshift(fx)
    xv, yv = np.meshgrid(fx, fy)
    angle = np.arctan2(yv, xv)
    rad = np.sqrt(xv**2 + yv**2)
    dc_y, dc_x = (h // 2, w // 2) if centred else (0, 0)
    rad[dc_y, dc_x] = rad[dc_y, dc_x - 1]  # in the DFT order the left neighbour is column w − 1
    return np.log2(rad), angle


def _mask_values(
    grid: np.ndarray[Any, Any], xs: np.ndarray[Any, Any], ys: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """A mask as pyiqa builds it: interpolated in float64, stored as float32, used in float64."""
    values: np.ndarray[Any, Any] = np.interp(grid.ravel(), xs, ys).reshape(grid.shape)
    return values.astype(np.float32).astype(np.float64)


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


def _inverse(spectrum: np.ndarray[Any, Any], workers: int) -> np.ndarray[Any, Any]:
    out: np.ndarray[Any, Any] = scipy.fft.ifft2(spectrum, workers=workers, overwrite_x=True)
    return out


def _high_pass(
    dft: np.ndarray[Any, Any],
    log_rad: np.ndarray[Any, Any],
    xr: np.ndarray[Any, Any],
    yr: np.ndarray[Any, Any],
    workers: int,
) -> torch.Tensor:
    return torch.from_numpy(_inverse(dft * _mask_values(log_rad, xr, yr), workers).real.copy())


def _crop_in_dft_order(n: int) -> np.ndarray[Any, Any]:
    """Indices, in a DFT-ordered axis of length n, of the coarser scale's axis in its own DFT order: pyiqa
    keeps centred entries start..end−1 (the middle half), then shifts them back."""
    start = int(np.ceil((n + 0.5) / 2) - np.ceil((np.ceil((n - 0.5) / 2) + 0.5) / 2))
    m = int(np.ceil((n - 0.5) / 2))
    centred = start + (np.arange(m) + m // 2) % m  # ifftshift of the cropped axis: entry i is centred i + m//2
    return (centred - n // 2) % n  # centred index j is DFT index j − n//2


def _coarser_scale(
    lodft: np.ndarray[Any, Any],
    log_rad: np.ndarray[Any, Any],
    angle: np.ndarray[Any, Any],
    xr: np.ndarray[Any, Any],
    yr: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The low-pass spectrum and the grids of the next scale down. pyiqa crops the centred spectrum to its
    middle half; the same values are gathered here from the DFT order straight into the DFT order of the
    cropped grid."""
    crop = np.ix_(*(_crop_in_dft_order(n) for n in lodft.shape))
    log_rad, angle = log_rad[crop], angle[crop]
    return _mask_values(log_rad, xr, np.abs(np.sqrt(1 - yr**2))) * lodft[crop], log_rad, angle


def _oriented_band(
    lodft: np.ndarray[Any, Any],
    himask: np.ndarray[Any, Any],
    angle: np.ndarray[Any, Any],
    workers: int,
    out: torch.Tensor,
    b: int,
) -> None:
    """Band b of a scale into out[b]: the low-pass spectrum times the angular and radial masks, back in space."""
    xcosn, ycosn = _angle_table()
    anglemask = _mask_values(angle, xcosn + np.pi * b / N_BANDS, ycosn)
    band = _inverse(lodft * anglemask * himask, workers)
    # pyiqa rotates the band by (−i)^(K−1) = −i before taking the real part: Re(−i·z) = Im(z).
    np.copyto(out[b].numpy(), band.imag)


def steerable_pyramid(img: torch.Tensor, pieces: Pieces = SERIAL) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Complex steerable pyramid, 2 scales × 6 orientations (matlabPyrTools' buildSCFpyr as pyiqa ports it).

    Returns the real high-pass residual (H, W) and, per scale (finer first), the real parts of its oriented
    bands as one (6, h, w) tensor. The masks are pyiqa's float32-valued ones and multiply the spectra in
    pyiqa's order (a complex value times a real mask is two real products, as in pyiqa's complex product with
    a zero imaginary part). pyiqa builds them on the centred DFT grid and shifts every product back before
    its inverse transform; here the grids are built in the DFT's own order instead (np.interp is applied per
    value, so the masks are the same values, permuted). The transforms are scipy's, which handle the plane's
    arbitrary sizes (large prime factors included) faster than torch's; the two differ by rounding only. The
    bands of a scale are independent `pieces`."""
    h, w = img.shape
    log_rad, angle = _freq_grid(h, w, centred=False)
    xr, yr = _raised_cosine()
    yr = np.sqrt(yr)
    yir = np.sqrt(1 - yr**2)

    dft = scipy.fft.fft2(img.to(torch.float64).numpy(), workers=pieces.caller_workers)
    hi0 = pieces.submit(partial(_high_pass, dft, log_rad, xr, yr, pieces.workers))
    lodft = dft * _mask_values(log_rad, xr, yir)

    def oriented_bands(
        lodft: np.ndarray[Any, Any],
        log_rad: np.ndarray[Any, Any],
        angle: np.ndarray[Any, Any],
        xr: np.ndarray[Any, Any],
    ) -> torch.Tensor:
        himask = _mask_values(log_rad, xr, yr)
        bands = torch.empty(N_BANDS, *lodft.shape, dtype=torch.float64)
        pieces.map(partial(_oriented_band, lodft, himask, angle, pieces.workers, bands), range(N_BANDS))
        return bands

    xr = xr - 1.0  # one octave down
    # The coarser scale's spectrum is prepared while the finer scale's bands are computed.
    coarser = pieces.submit(partial(_coarser_scale, lodft, log_rad, angle, xr, yr))
    fine = oriented_bands(lodft, log_rad, angle, xr)
    coarse = oriented_bands(*coarser.result(), xr - 1.0)
    return hi0.result(), [fine, coarse]


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


def resize_f32(x: torch.Tensor, size: tuple[int, int], out: torch.Tensor | None = None) -> torch.Tensor:
    """pyiqa's imresize(x, sizes=size) for enlargement: computed in float32 (its cast), returned as float64
    (written into `out` when given)."""
    y = x.to(torch.float32)
    y = _resize_dim_f32(y, 0, size[0])
    y = _resize_dim_f32(y, 1, size[1])
    return y.to(torch.float64) if out is None else out.copy_(y)

"""The previous, plainer formulations of NRQM steps that sreval now computes by faster routes, kept to check
that the fast routes give the same numbers on arbitrary inputs (tests/test_nrqm_fast.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sreval.metrics.nrqm.features import _ORIENTATIONS, _dct_matrix, _same_pad
from sreval.metrics.nrqm.stats import _ggd_table, gauss_kernel
from sreval.metrics.nrqm.steerable import N_BANDS, _angle_table, _cubic, _freq_grid, _raised_cosine, as_f32_in_f64

F64 = torch.float64


def ggd_shape(x: torch.Tensor) -> torch.Tensor:
    """GGD shape of each row by moment matching, with torch's own variance: the grid γ whose ρ(γ) is nearest
    to var / mean(|x − mean|)² (an argmin over the whole grid)."""
    gamma, table = _ggd_table()
    mean = x.mean(dim=-1, keepdim=True)
    rho = x.var(dim=-1, keepdim=True) / ((x - mean).abs().mean(dim=-1, keepdim=True) ** 2 + 1e-7)
    return gamma[(rho - table).abs().argmin(dim=-1)]


def coeff_var(x: torch.Tensor, eps: float) -> torch.Tensor:
    a = x.abs()
    return a.std(dim=-1) / (a.mean(dim=-1) + eps)


def gauss_pyramid(x: torch.Tensor, levels: int = 2) -> list[torch.Tensor]:
    """The pyramid as pyiqa builds it: the whole level filtered ('same', zero border), odd rows/columns kept."""
    k = gauss_kernel(3, 0.5)[None, None]
    pyr = [x]
    for _ in range(levels):
        x = F.conv2d(x[None, None], k, padding=1)[0, 0, 1::2, 1::2]
        pyr.append(x)
    return pyr


def block_dct_features(level: torch.Tensor) -> torch.Tensor:
    """Six block-DCT statistics of a pyramid level with the DCT as C·B·Cᵀ on each 7×7 block, torch's own
    variance and standard deviation, and full sorts."""
    (pt, pb), (pl, pr) = _same_pad(level.shape[0], 7, 3), _same_pad(level.shape[1], 7, 3)
    padded = F.pad(level[None, None], (pl, pr, pt, pb))
    blocks = F.unfold(padded, 7, stride=3)[0].T.reshape(-1, 7, 7)
    c = _dct_matrix(7)
    coef = (c @ blocks @ c.T).reshape(-1, 49)
    ac = coef[:, 1:]
    shape = torch.sort(ggd_shape(ac)).values
    cv = torch.sort(coeff_var(ac, 1e-7)).values
    per_orientation = torch.stack([coeff_var(coef[:, idx], 1e-8) for idx in _ORIENTATIONS], dim=-1)
    orient = torch.sort(per_orientation.var(dim=-1)).values

    def lowest(x: torch.Tensor, frac: float) -> torch.Tensor:
        return x[: math.ceil(frac * x.numel()) + 1].mean()

    def highest(x: torch.Tensor, start: float) -> torch.Tensor:
        return x[math.floor(start * x.numel()) :].mean()

    return torch.stack(
        [lowest(shape, 0.1), shape.mean(), highest(cv, 0.9), cv.mean(), highest(orient, 0.9), orient.mean()]
    )


def gsm_normalise(bands: list[torch.Tensor]) -> list[torch.Tensor]:
    """GSM normalisation as pyiqa lays it out: unfold + columns, a linear solve for every neighbourhood, the
    parent enlarged here."""
    out = []
    for idx, band in enumerate(bands):
        si, bi = divmod(idx, N_BANDS)
        h, w = band.shape
        cols = [F.unfold(band[None, None], 3)[0].T]
        n_window = 9
        if idx + N_BANDS < len(bands):
            parent = resize_f32(bands[idx + N_BANDS], (h, w))
            cols.append(parent[1:-1, 1:-1].reshape(-1, 1))
            n_window += 1
        for ni in range(N_BANDS):
            if ni != bi:
                cols.append(bands[si * N_BANDS + ni][1:-1, 1:-1].reshape(-1, 1))
        t = torch.cat(cols, dim=1)
        cov = t.T @ t / t.shape[0]
        evals, evecs = torch.linalg.eigh(cov)
        pos = evals * (evals > 0)
        pos_sum = pos.sum()
        evals = pos * evals.sum() / (pos_sum + (pos_sum == 0).to(F64))
        cov = evecs @ torch.diag(evals) @ evecs.T
        centre = band[1:-1, 1:-1].reshape(-1)
        centre = centre - centre.mean()
        quad = (torch.linalg.solve(cov.T, t.T).T * t / n_window).sum(dim=1)
        z = quad.sqrt()
        mask = z != 0
        g = (centre * mask / (z * mask + 1e-12)).reshape(h - 2, w - 2)
        gb = 16 >> si
        g = g[gb:-gb, gb:-gb]
        out.append(g - g.mean())
    return out


def gsm_normalise_stacked(bands: list[torch.Tensor], parents: list[torch.Tensor]) -> list[torch.Tensor]:
    """GSM normalisation with every neighbourhood vector of a band stacked into one (k, n) matrix of shifted
    views: the covariance and the quadratic form as one matrix product each over the whole band."""
    out = []
    for idx, band in enumerate(bands):
        si, bi = divmod(idx, N_BANDS)
        h, w = band.shape
        rows = [band[dy : h - 2 + dy, dx : w - 2 + dx] for dy in range(3) for dx in range(3)]
        if idx < len(parents):
            rows.append(parents[idx][1:-1, 1:-1])
        rows += [bands[si * N_BANDS + ni][1:-1, 1:-1] for ni in range(N_BANDS) if ni != bi]
        t = torch.stack(rows).reshape(len(rows), -1)
        n_window = t.shape[0] - (N_BANDS - 1)
        cov = t @ t.T / t.shape[1]
        evals, evecs = torch.linalg.eigh(cov)
        pos = evals * (evals > 0)
        pos_sum = pos.sum()
        evals = pos * evals.sum() / (pos_sum + (pos_sum == 0).to(F64))
        cov = evecs @ torch.diag(evals) @ evecs.T
        inv_t = torch.linalg.solve(cov.T, torch.eye(cov.shape[0], dtype=F64))
        quad = ((inv_t @ t) * t).sum(dim=0) / n_window
        centre = t[4] - t[4].mean()
        z = quad.sqrt()
        mask = z != 0
        g = (centre * mask / (z * mask + 1e-12)).reshape(h - 2, w - 2)
        gb = 16 >> si
        g = g[gb:-gb, gb:-gb]
        out.append(g - g.mean())
    return out


def contrast_structure(images: list[torch.Tensor], pairs: list[tuple[int, int]]) -> torch.Tensor:
    """Mean SSIM contrast-structure of each pair by a direct float64 'valid' filter with the 11×11 window."""
    win = gauss_kernel(11, 1.5)[None, None]
    c2 = (0.03 * 255) ** 2

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x[None, None], win)[0, 0]

    out = []
    for i, j in pairs:
        x, y = images[i], images[j]
        mx, my = filt(x), filt(y)
        vx, vy = filt(x * x) - mx**2, filt(y * y) - my**2
        cov = filt(x * y) - mx * my
        out.append(F.relu((2 * cov + c2) / (vx + vy + c2)).mean())
    return torch.stack(out)


def _mask(grid: np.ndarray[Any, Any], xs: np.ndarray[Any, Any], ys: np.ndarray[Any, Any]) -> torch.Tensor:
    return as_f32_in_f64(np.interp(grid.ravel(), xs, ys).reshape(grid.shape))


def steerable_pyramid(img: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The complex steerable pyramid step for step as pyiqa computes it: centred spectra shifted back before
    every inverse transform, masks applied as complex products, the band rotated by (−i)^(K−1) explicitly."""
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


def walk_tree(forest: dict[str, Any], t: int, x: np.ndarray) -> float:
    """pyiqa's tree walk, step for step: at most one step per node row; a terminal node's split variable is 0,
    read as index −1; the value is that of the last node compared."""
    k = prev = 0
    for _ in range(forest["lDau"].shape[0]):
        var = int(forest["mbest"][k, t]) - 1
        prev = k
        k = int((forest["lDau"] if x[var] <= forest["upper"][k, t] else forest["rDau"])[k, t]) - 1
        if k == -1:
            break
    return float(forest["avnode"][prev, t])


def resize_dim_f32(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """The float32 bicubic enlargement along one dimension with torch's general indexing (pyiqa's layout)."""
    n_in = x.shape[dim]
    if size == n_in:
        return x
    scale = size / n_in
    taps = 6
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
    if dim == 0:
        padded = x[idx]
        prods = [padded[rows + k] * weight[k][:, None] for k in range(taps)]
    else:
        padded = x[:, idx]
        prods = [padded[:, rows + k] * weight[k][None, :] for k in range(taps)]
    return torch.stack(prods).sum(dim=0)


def resize_f32(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """pyiqa's imresize for enlargement: float32 inside, float64 out."""
    y = x.to(torch.float32)
    return resize_dim_f32(resize_dim_f32(y, 0, size[0]), 1, size[1]).to(torch.float64)

"""The three NRQM feature groups of a luma plane (see the package docstring): local frequency (block DCT
statistics on a Gaussian pyramid), global frequency (GSM-normalised steerable pyramid) and spatial (singular
values of distinct blocks)."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F

from sreval.errors import SrevalError
from sreval.metrics.nrqm.steerable import N_BANDS, as_f32_in_f64, resize_f32, steerable_pyramid

F64 = torch.float64
#: Lengths of the three feature vectors (local frequency, global frequency, spatial).
FEATURE_SIZES = (18, 45, 75)
_EPS_GGD = 1e-7


# --- shared statistics ----------------------------------------------------------------------------------


@cache
def _ggd_table() -> tuple[torch.Tensor, torch.Tensor]:
    """Shape grid 0.03..10 (step 0.001, built in float32 as pyiqa does) and ρ(γ) = Γ(1/γ)Γ(3/γ)/Γ(2/γ)²."""
    gamma = torch.arange(0.03, 10 + 0.001, 0.001, dtype=torch.float32).to(F64)
    r = (torch.lgamma(1.0 / gamma) + torch.lgamma(3.0 / gamma) - 2 * torch.lgamma(2.0 / gamma)).exp()
    return gamma, r


def _ggd_shape(x: torch.Tensor) -> torch.Tensor:
    """Generalised-Gaussian shape of each row of x (..., n) by moment matching: the grid γ whose ρ(γ) is
    nearest to var / mean(|x − mean|)². ρ is strictly decreasing on the grid, so the nearest entry is one of
    the two around the insertion point (ties go to the lower index, as an argmin over the grid would)."""
    gamma, r = _ggd_table()
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True)
    mean_abs = (x - mean).abs().mean(dim=-1, keepdim=True) ** 2
    rho = (var / (mean_abs + _EPS_GGD)).squeeze(-1)
    r_up = r.flip(0)  # ascending
    n = r.numel()
    pos = torch.searchsorted(r_up, rho)  # r_up[pos-1] < rho <= r_up[pos]
    hi = (n - 1 - pos).clamp(0, n - 1)  # index in r of the entry >= rho (smaller γ index... larger r)
    lo = (n - pos).clamp(0, n - 1)  # index in r of the entry < rho
    d_hi = (rho - r[hi]).abs()
    d_lo = (rho - r[lo]).abs()
    first, second = torch.minimum(hi, lo), torch.maximum(hi, lo)
    d_first = torch.where(first == hi, d_hi, d_lo)
    d_second = torch.where(first == hi, d_lo, d_hi)
    idx = torch.where(d_second < d_first, second, first)
    return gamma[idx]


def _coeff_var(x: torch.Tensor, eps: float) -> torch.Tensor:
    """std(|x|) / mean(|x|) along the last dimension (unbiased std)."""
    a = x.abs()
    return a.std(dim=-1) / (a.mean(dim=-1) + eps)


# --- pyramid and block DCT (group 1) ----------------------------------------------------------------------


@cache
def _gauss_kernel(size: int, sigma: float) -> torch.Tensor:
    """MATLAB fspecial('gaussian'), rounded to float32 as pyiqa's kernels are."""
    m = (size - 1) / 2.0
    ax = np.arange(-m, m + 1)
    h = np.exp(-(ax[None, :] ** 2 + ax[:, None] ** 2) / (2.0 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    h /= h.sum()
    return as_f32_in_f64(h)


def _gauss_pyramid(x: torch.Tensor, levels: int = 2) -> list[torch.Tensor]:
    """x (H, W) and `levels` halvings: 3×3 Gaussian (σ 0.5), zero border, keep odd rows/columns."""
    k = _gauss_kernel(3, 0.5)[None, None]
    pyr = [x]
    for _ in range(levels):
        x = F.conv2d(x[None, None], k, padding=1)[0, 0, 1::2, 1::2]
        pyr.append(x)
    return pyr


@cache
def _dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix C, so that dct2(B) = C B Cᵀ."""
    k = torch.arange(n, dtype=F64)[:, None]
    i = torch.arange(n, dtype=F64)[None, :]
    c = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


# Three orientation groups of the 7×7 DCT coefficients (row = vertical frequency, column = horizontal).
def _orientation_index() -> list[list[int]]:
    def flat(rows: list[tuple[int, range]]) -> list[int]:
        return [u * 7 + v for u, vs in rows for v in vs]

    horizontal = flat([(0, range(1, 7)), (1, range(2, 7)), (2, range(4, 7)), (3, range(5, 7))])
    diagonal = flat([(1, range(1, 2)), (2, range(2, 4)), (3, range(2, 5)), (4, range(3, 7)), (5, range(4, 7)),
                     (6, range(4, 7))])
    vertical = [(i % 7) * 7 + i // 7 for i in horizontal]  # the transpose of the first group
    return [horizontal, diagonal, vertical]


_ORIENTATIONS = _orientation_index()


def _mean_lowest(sorted_x: torch.Tensor, frac: float) -> torch.Tensor:
    return sorted_x[: math.ceil(frac * sorted_x.numel()) + 1].mean()


def _mean_highest(sorted_x: torch.Tensor, start: float) -> torch.Tensor:
    return sorted_x[math.floor(start * sorted_x.numel()):].mean()


def _block_dct_features(level: torch.Tensor) -> torch.Tensor:
    """Six statistics of the 7×7 DCTs of blocks taken every 3 px (zero 'SAME' padding)."""
    (pt, pb), (pl, pr) = _same_pad(level.shape[0], 7, 3), _same_pad(level.shape[1], 7, 3)
    padded = F.pad(level[None, None], (pl, pr, pt, pb))
    blocks = F.unfold(padded, 7, stride=3)[0].T.reshape(-1, 7, 7)
    c = _dct_matrix(7)
    coef = (c @ blocks @ c.T).reshape(-1, 49)
    ac = coef[:, 1:]

    shape = torch.sort(_ggd_shape(ac)).values
    cv = torch.sort(_coeff_var(ac, 1e-7)).values
    per_orientation = torch.stack([_coeff_var(coef[:, idx], 1e-8) for idx in _ORIENTATIONS], dim=-1)
    orient = torch.sort(per_orientation.var(dim=-1)).values
    return torch.stack([
        _mean_lowest(shape, 0.1), shape.mean(),
        _mean_highest(cv, 0.9), cv.mean(),
        _mean_highest(orient, 0.9), orient.mean(),
    ])


# --- GSM normalisation of the steerable pyramid (group 2) -----------------------------------------------


def _gsm_normalise(bands: list[torch.Tensor]) -> list[torch.Tensor]:
    """Divisive normalisation of each band by its GSM neighbourhood (3×3 window, parent band, the other
    orientations of the same scale), then a guard band of 16 px (8 px at the coarser scale) is removed."""
    out = []
    for idx, band in enumerate(bands):
        si, bi = divmod(idx, N_BANDS)
        h, w = band.shape
        cols = [F.unfold(band[None, None], 3)[0].T]  # (n, 9): 3×3 window, row-major
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
        # Make the covariance positive semi-definite while keeping its trace.
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


def _contrast_structure(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean SSIM contrast-structure term of each pair of same-size images (11×11 Gaussian σ 1.5, valid,
    L = 255, negatives clamped to 0).

    The local means are correlations with the float32-rounded Gaussian window (not exactly separable), done
    with FFTs: a circular correlation on the image's own grid equals the 'valid' one wherever the window does
    not wrap, which is exactly the valid region. Same values as a direct float64 filter up to rounding
    (~1e-15 relative), about 20× faster on the CPU."""
    win = _gauss_kernel(11, 1.5)
    c2 = (0.03 * 255) ** 2
    h, w = pairs[0][0].shape
    vh, vw = h - win.shape[0] + 1, w - win.shape[1] + 1
    kernel_ft = torch.fft.rfft2(F.pad(win, (0, w - win.shape[1], 0, h - win.shape[0]))).conj()

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.fft.irfft2(torch.fft.rfft2(x) * kernel_ft, s=(h, w))
        return out[..., :vh, :vw]

    images: dict[int, torch.Tensor] = {}
    for x, y in pairs:
        images.setdefault(id(x), x)
        images.setdefault(id(y), y)
    keys = list(images)
    stack = torch.stack([images[k] for k in keys])
    mu = local_mean(stack)
    var = local_mean(stack * stack) - mu**2
    row = {k: i for i, k in enumerate(keys)}
    ix = torch.tensor([row[id(x)] for x, _ in pairs])
    iy = torch.tensor([row[id(y)] for _, y in pairs])
    cov = local_mean(stack[ix] * stack[iy]) - mu[ix] * mu[iy]
    cs = F.relu((2 * cov + c2) / (var[ix] + var[iy] + c2))
    return cs.mean(dim=(1, 2))


def _gsm_features(img: torch.Tensor) -> torch.Tensor:
    hi0, bands = steerable_pyramid(img)
    sub = _gsm_normalise(bands)
    feats = [_ggd_shape(s.reshape(-1)) for s in sub]
    feats += [_ggd_shape(torch.cat([sub[i].reshape(-1), sub[i + N_BANDS].reshape(-1)])) for i in range(N_BANDS)]
    up = [resize_f32(b, (hi0.shape[0], hi0.shape[1])) for b in bands]
    across_scales = _contrast_structure([(u, hi0) for u in up])
    across_orientations = _contrast_structure(
        [(sub[i], sub[j]) for i in range(N_BANDS) for j in range(i + 1, N_BANDS)])
    return torch.cat([torch.stack(feats), across_scales, across_orientations])


# --- distinct-block singular values (group 3) -----------------------------------------------------------


def _block_singular_values(level: torch.Tensor) -> torch.Tensor:
    h, w = level.shape
    padded = F.pad(level, (0, (-w) % 5, 0, (-h) % 5))
    blocks = F.unfold(padded[None, None], 5, stride=5)[0].T  # (n_blocks, 25)
    values: torch.Tensor = torch.linalg.svdvals(blocks)
    return values


# --- all three -------------------------------------------------------------------------------------------


def nrqm_features(plane: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three NRQM feature vectors of a luma plane (H, W), values 0..255, as float64:
    local frequency (18), global frequency (45), spatial (75), in pyiqa's order."""
    if plane.dim() != 2:
        raise SrevalError(f"NRQM takes one luma plane (H, W), got shape {tuple(plane.shape)}")
    if min(plane.shape) < 64:
        raise SrevalError(f"NRQM needs a plane of at least 64×64 pixels, got {tuple(plane.shape)}")
    img = plane.to(F64)
    pyr = _gauss_pyramid(img / 255.0)
    f1 = torch.cat([_block_dct_features(level) for level in pyr])
    f2 = _gsm_features(img)
    f3 = torch.cat([_block_singular_values(level) for level in pyr])
    return f1, f2, f3

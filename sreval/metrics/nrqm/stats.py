"""Statistics shared by the NRQM feature groups: the generalised-Gaussian shape fit, the coefficient of variation
and MATLAB's Gaussian kernel as pyiqa rounds it."""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from sreval.metrics.nrqm.steerable import as_f32_in_f64

F64 = torch.float64
_EPS_GGD = 1e-7


@cache
def _ggd_table() -> tuple[torch.Tensor, torch.Tensor]:
    """Shape grid 0.03..10 (step 0.001, built in float32 as pyiqa does) and ρ(γ) = Γ(1/γ)Γ(3/γ)/Γ(2/γ)²."""
    gamma = torch.arange(0.03, 10 + 0.001, 0.001, dtype=torch.float32).to(F64)
    r = (torch.lgamma(1.0 / gamma) + torch.lgamma(3.0 / gamma) - 2 * torch.lgamma(2.0 / gamma)).exp()
    return gamma, r


def _two_pass_var(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Unbiased variance along the last dimension given its mean (keepdim): Σ(x − mean)² / (n − 1). torch's
    var reduces in one Welford pass, several times slower on many short rows than these two plain passes."""
    return (x - mean).square_().sum(dim=-1).div_(x.shape[-1] - 1)


def ggd_shape(x: torch.Tensor) -> torch.Tensor:
    """Generalised-Gaussian shape of each row of x (..., n) by moment matching: the grid γ whose ρ(γ) is
    nearest to var / mean(|x − mean|)². ρ is strictly decreasing on the grid, so the nearest entry is one of
    the two around the insertion point (ties go to the lower index, as an argmin over the grid would)."""
    gamma, r = _ggd_table()
    mean = x.mean(dim=-1, keepdim=True)
    var = _two_pass_var(x, mean)
    mean_abs = (x - mean).abs_().mean(dim=-1) ** 2
    rho = var / (mean_abs + _EPS_GGD)
    r_up = r.flip(0)  # ascending
    n = r.numel()
    pos = torch.searchsorted(r_up, rho)  # r_up[pos-1] < rho <= r_up[pos]
    hi = (n - 1 - pos).clamp(0, n - 1)  # index in r of the entry >= rho (smaller γ index... larger r)
    lo = (n - pos).clamp(0, n - 1)  # index in r of the entry < rho
    d_hi = (rho - r.index_select(0, hi.reshape(-1)).reshape(hi.shape)).abs()
    d_lo = (rho - r.index_select(0, lo.reshape(-1)).reshape(lo.shape)).abs()
    first, second = torch.minimum(hi, lo), torch.maximum(hi, lo)
    d_first = torch.where(first == hi, d_hi, d_lo)
    d_second = torch.where(first == hi, d_lo, d_hi)
    idx = torch.where(d_second < d_first, second, first)
    return gamma.index_select(0, idx.reshape(-1)).reshape(idx.shape)


def coeff_var(x: torch.Tensor, eps: float) -> torch.Tensor:
    """std(|x|) / mean(|x|) along the last dimension (unbiased std)."""
    a = x.abs()
    mean = a.mean(dim=-1, keepdim=True)
    return _two_pass_var(a, mean).sqrt_() / (mean.squeeze(-1) + eps)


@cache
def gauss_kernel(size: int, sigma: float) -> torch.Tensor:
    """MATLAB fspecial('gaussian'), rounded to float32 as pyiqa's kernels are."""
    m = (size - 1) / 2.0
    ax = np.arange(-m, m + 1)
    h = np.exp(-(ax[None, :] ** 2 + ax[:, None] ** 2) / (2.0 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    h /= h.sum()
    return as_f32_in_f64(h)

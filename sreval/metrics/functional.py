"""PSNR and SSIM as pure, batched torch functions in float64.

Inputs are planes (N, C, H, W) on the 0..255 scale (uint8 or float); choose the plane with
`sreval.data.color.luma_pair` first. `shave` pixels are removed from every border before anything else.
SSIM follows Wang et al.'s reference `ssim_index.m`: an 11×11 Gaussian window with σ = 1.5 (normalised to sum 1),
C1 = (0.01·L)², C2 = (0.03·L)², 'valid' filtering (no padding) and the mean of the SSIM map. The Gaussian is
separable, so the window is applied as two 11-tap passes: the same sums in a different order (differences are at
the 1e-13 level) for a fifth of the work, and the five filtered maps share one convolution call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sreval.errors import SrevalError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _prepare(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> tuple[torch.Tensor, torch.Tensor]:
    if sr.shape != hr.shape:
        raise SrevalError(f"image sizes differ: output {tuple(sr.shape)} vs reference {tuple(hr.shape)}")
    if sr.dim() != 4:
        raise SrevalError(f"expected (N, C, H, W), got {tuple(sr.shape)}")
    if shave < 0:
        raise SrevalError(f"shave must be >= 0, got {shave}")
    h, w = sr.shape[-2:]
    if h <= 2 * shave or w <= 2 * shave:
        raise SrevalError(f"image {h}x{w} is too small to shave {shave} px from each border")
    if shave:
        sr = sr[..., shave:-shave, shave:-shave]
        hr = hr[..., shave:-shave, shave:-shave]
    return sr.to(torch.float64), hr.to(torch.float64)


def mse(sr: torch.Tensor, hr: torch.Tensor, *, shave: int = 0) -> torch.Tensor:
    """Mean squared error per image, (N,) float64."""
    sr, hr = _prepare(sr, hr, shave)
    return (sr - hr).square().flatten(1).mean(dim=1)


def psnr(sr: torch.Tensor, hr: torch.Tensor, *, shave: int = 0, data_range: float = 255.0) -> torch.Tensor:
    """PSNR in dB per image, (N,) float64; +inf for identical images."""
    return 10 * torch.log10(data_range**2 / mse(sr, hr, shave=shave))


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """1-D factor of MATLAB's fspecial('gaussian', size, sigma); its outer product is the normalised 2-D window."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of every channel of x (N, C, H, W) with window g ⊗ g."""
    channels = x.shape[1]
    rows = g.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = g.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    x = F.conv2d(x, rows, groups=channels)
    return F.conv2d(x, cols, groups=channels)


def ssim(
    sr: torch.Tensor,
    hr: torch.Tensor,
    *,
    shave: int = 0,
    data_range: float = 255.0,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
) -> torch.Tensor:
    """Mean SSIM per image, (N,) float64, averaged over channels when C > 1."""
    x, y = _prepare(sr, hr, shave)
    if min(x.shape[-2:]) < window:
        raise SrevalError(f"image {tuple(x.shape[-2:])} (after shave) is smaller than the {window}px SSIM window")
    n, c = x.shape[:2]
    g = gaussian_window_1d(window, sigma).to(x.device)
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # one conv call for all five maps
    mu_x, mu_y, xx, yy, xy = _filter_valid(stacked, g).split(c, dim=1)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x, var_y, cov = xx - mu_xx, yy - mu_yy, xy - mu_xy
    ssim_map = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    return ssim_map.reshape(n, -1).mean(dim=1)

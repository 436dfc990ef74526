"""PSNR and SSIM as pure, batched torch functions in float64.

Inputs are planes (N, C, H, W) on the 0..255 scale (uint8 or float); choose the plane with
`sreval.matlab.color.luma_pair` first. `shave` pixels are removed from every border before anything else.
SSIM follows Wang et al.'s reference `ssim_index.m`: an 11×11 Gaussian window with σ = 1.5 (normalised to sum 1),
C1 = (0.01·L)², C2 = (0.03·L)², 'valid' filtering (no padding) and the mean of the SSIM map. The Gaussian is
separable, so the window is applied as two 11-tap passes: the same sums in a different order (differences are at
the 1e-13 level) for a fifth of the work.
"""

from __future__ import annotations

import torch

from sreval.errors import ParameterError, SrevalError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
_BAND_ROWS = 64


def _prepare(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> tuple[torch.Tensor, torch.Tensor]:
    if sr.shape != hr.shape:
        raise SrevalError(f"image sizes differ: output {tuple(sr.shape)} vs reference {tuple(hr.shape)}")
    if sr.dim() != 4:
        raise SrevalError(f"expected (N, C, H, W), got {tuple(sr.shape)}")
    if shave < 0:
        raise ParameterError("shave", f"shave must be >= 0, got {shave}")
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
    return (sr - hr).square_().flatten(1).mean(dim=1)


def psnr_from_mse(mse: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """PSNR in dB from the MSE that `mse` returns, for a caller that also needs the MSE itself (RMSE)."""
    return 10 * torch.log10(data_range**2 / mse)


def psnr(sr: torch.Tensor, hr: torch.Tensor, *, shave: int = 0, data_range: float = 255.0) -> torch.Tensor:
    """PSNR in dB per image, (N,) float64; +inf for identical images."""
    return psnr_from_mse(mse(sr, hr, shave=shave), data_range)


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """1-D factor of MATLAB's fspecial('gaussian', size, sigma); its outer product is the normalised 2-D window."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(
    x: torch.Tensor, taps: list[float], buffers: tuple[torch.Tensor, torch.Tensor] | None = None
) -> torch.Tensor:
    """Separable 'valid' filtering of x (..., H, W) with the window taps ⊗ taps, as shifted multiply-adds.

    On the CPU this beats conv2d in float64 several times over (no float64 kernels there) and sums the taps in a
    fixed order on every device. `buffers`: where the vertical and the horizontal pass write (the first rows
    are used), for a caller that filters band after band; new tensors otherwise.
    """
    n = len(taps)
    h, w = x.shape[-2] - n + 1, x.shape[-1] - n + 1
    rows_out, out_out = (None, None) if buffers is None else (buffers[0][..., 0:h, :], buffers[1][..., 0:h, :])
    rows = torch.mul(x[..., 0:h, :], taps[0], out=rows_out)
    for k in range(1, n):
        rows.add_(x[..., k : k + h, :], alpha=taps[k])
    out = torch.mul(rows[..., :, 0:w], taps[0], out=out_out)
    for k in range(1, n):
        out.add_(rows[..., :, k : k + w], alpha=taps[k])
    return out


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
    return _ssim_bands(x, y, None, None, data_range, window, sigma)


def ssim_sharing_reference(
    sr: torch.Tensor,
    hr: torch.Tensor,
    reference_maps: torch.Tensor | None,
    *,
    shave: int = 0,
    data_range: float = 255.0,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`ssim` and the reference's maps, for scoring several outputs against one reference: pass the maps that
    the first call returns to the next ones, which then filter two fifths less. The values are `ssim`'s, bit for
    bit: every map goes through the same operations whether it is filtered with the others or on its own.

    The maps, (2, N, C, H', W'), are the reference's local mean and variance (filtered b and filtered b² − mean²)
    for this shave, window and sigma."""
    x, y = _prepare(sr, hr, shave)
    if reference_maps is None:
        made = torch.empty((2, *_valid_shape(x, window)), dtype=torch.float64, device=x.device)
        return _ssim_bands(x, y, None, made, data_range, window, sigma), made
    if reference_maps.shape != (2, *_valid_shape(x, window)):
        raise SrevalError(
            f"SSIM reference maps {tuple(reference_maps.shape)} are not those of a {tuple(y.shape)} reference "
            f"(after shave) with a {window}px window"
        )
    return _ssim_bands(x, y, reference_maps, None, data_range, window, sigma), reference_maps


def _valid_shape(x: torch.Tensor, window: int) -> tuple[int, ...]:
    if min(x.shape[-2:]) < window:
        raise SrevalError(f"image {tuple(x.shape[-2:])} (after shave) is smaller than the {window}px SSIM window")
    return (*x.shape[:-2], x.shape[-2] - window + 1, x.shape[-1] - window + 1)


def _ssim_bands(
    x: torch.Tensor,
    y: torch.Tensor,
    known: torch.Tensor | None,
    keep: torch.Tensor | None,
    data_range: float,
    window: int,
    sigma: float,
) -> torch.Tensor:
    """SSIM of shaved float64 planes. `known`: the reference's maps (`ssim_sharing_reference`), so that only the
    output's three maps are filtered; otherwise all five are, and `keep`, if given, receives the reference's.

    The map is summed in bands of the same rows whichever maps are known, and each band with the same
    operations on the same layout, so that the sums, and thus the values, are the same bits."""
    *_, out_rows, out_cols = _valid_shape(x, window)
    taps = gaussian_window_1d(window, sigma).tolist()
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    # On the CPU, work through bands of output rows so that the filtered maps of a band stay in cache;
    # a GPU prefers one big band (fewer kernel launches).
    band = _BAND_ROWS if x.device.type == "cpu" else out_rows
    # The products to filter and the two passes of the filter write into buffers made once per call rather than
    # into new tensors per band (the values do not depend on where they are written).
    lead, first_rows = (5 if known is None else 3, *x.shape[:-2]), min(band, out_rows)
    stack = x.new_empty((*lead, first_rows + window - 1, x.shape[-1]))
    buffers = x.new_empty((*lead, first_rows, x.shape[-1])), x.new_empty((*lead, first_rows, out_cols))
    for top in range(0, out_rows, band):
        rows = min(band, out_rows - top)
        a = x[..., top : top + rows + window - 1, :]
        b = y[..., top : top + rows + window - 1, :]
        products = stack[..., : rows + window - 1, :]
        if known is None:
            products[0].copy_(a)
            products[1].copy_(b)
            torch.mul(a, a, out=products[2])
            torch.mul(b, b, out=products[3])
            torch.mul(a, b, out=products[4])
            mu_a, mu_b, aa, bb, ab = _filter_valid(products, taps, buffers)
            mu_bb = mu_b * mu_b
            var_b = bb.sub_(mu_bb)
            if keep is not None:
                keep[0, ..., top : top + rows, :].copy_(mu_b)
                keep[1, ..., top : top + rows, :].copy_(var_b)
        else:
            products[0].copy_(a)
            torch.mul(a, a, out=products[1])
            torch.mul(a, b, out=products[2])
            mu_a, aa, ab = _filter_valid(products, taps, buffers)
            mu_b, var_b = known[0, ..., top : top + rows, :], known[1, ..., top : top + rows, :]
            mu_bb = mu_b * mu_b
        total += _band_sum(mu_a, aa, ab, mu_b, mu_bb, var_b, c1, c2)
    return total / (x.shape[1] * out_rows * out_cols)


def _band_sum(
    mu_a: torch.Tensor,
    aa: torch.Tensor,
    ab: torch.Tensor,
    mu_b: torch.Tensor,
    mu_bb: torch.Tensor,
    var_b: torch.Tensor,
    c1: float,
    c2: float,
) -> torch.Tensor:
    """Sum over a band, per image, of the SSIM map
    ((2·mu_a·mu_b + c1)·(2·(ab − mu_a·mu_b) + c2)) / ((mu_a² + mu_b² + c1)·((aa − mu_a²) + var_b + c2)),
    operation by operation as written, in place in the filtered maps `aa` and `ab` (they are not used again)."""
    mu_ab = mu_a * mu_b
    num = torch.mul(mu_ab, 2).add_(c1).mul_(ab.sub_(mu_ab).mul_(2).add_(c2))
    mu_aa = torch.mul(mu_a, mu_a, out=mu_ab)
    den = (mu_aa + mu_bb).add_(c1).mul_(aa.sub_(mu_aa).add_(var_b).add_(c2))
    return num.div_(den).flatten(1).sum(dim=1)

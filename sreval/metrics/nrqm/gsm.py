"""Group 2 of the NRQM features (global frequency): the steerable pyramid's bands, divisively normalised by a
Gaussian-scale-mixture neighbourhood, their GGD shapes, and SSIM contrast-structure across scales and
orientations."""

from __future__ import annotations

import scipy.fft
import torch
import torch.nn.functional as F

from sreval.metrics.nrqm.stats import F64, gauss_kernel, ggd_shape
from sreval.metrics.nrqm.steerable import N_BANDS, resize_f32, steerable_pyramid


def gsm_normalise(bands: list[torch.Tensor], parents: list[torch.Tensor]) -> list[torch.Tensor]:
    """Divisive normalisation of each band by its GSM neighbourhood (3×3 window, parent band, the other
    orientations of the same scale), then a guard band of 16 px (8 px at the coarser scale) is removed.

    `parents[i]` is band i + N_BANDS enlarged to the size of band i (for the bands that have a parent).
    The neighbourhood vectors are the rows of a (k, n) matrix built from shifted views, so the covariance and
    the quadratic form are each one matrix product over contiguous rows."""
    out = []
    for idx, band in enumerate(bands):
        si, bi = divmod(idx, N_BANDS)
        h, w = band.shape
        # The 3×3 window in F.unfold's order (row-major offsets), as pyiqa lays it out.
        rows = [band[dy : h - 2 + dy, dx : w - 2 + dx] for dy in range(3) for dx in range(3)]
        if idx < len(parents):
            rows.append(parents[idx][1:-1, 1:-1])
        rows += [bands[si * N_BANDS + ni][1:-1, 1:-1] for ni in range(N_BANDS) if ni != bi]
        t = torch.stack(rows).reshape(len(rows), -1)
        n_window = t.shape[0] - (N_BANDS - 1)  # window and parent: the divisor pyiqa uses
        cov = t @ t.T / t.shape[1]
        # Make the covariance positive semi-definite while keeping its trace.
        evals, evecs = torch.linalg.eigh(cov)
        pos = evals * (evals > 0)
        pos_sum = pos.sum()
        evals = pos * evals.sum() / (pos_sum + (pos_sum == 0).to(F64))
        cov = evecs @ torch.diag(evals) @ evecs.T
        # Row i of t·C⁻¹ is what solving Cᵀ y = tᵢ gives; C⁻ᵀ once, then one product for all n vectors.
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
    """Mean SSIM contrast-structure term of each pair (i, j) of the same-size `images` (11×11 Gaussian σ 1.5,
    valid, L = 255, negatives clamped to 0).

    The local means are correlations with the float32-rounded Gaussian window (not exactly separable), done
    with FFTs: a circular correlation over a grid at least as large as the image equals the 'valid' one
    wherever the window does not wrap, which is exactly the valid region. The grid is the image zero-padded
    to the next size whose FFT is fast (a large prime factor would make it several times slower). Same values
    as a direct float64 filter up to rounding (~1e-15 relative)."""
    win = gauss_kernel(11, 1.5)
    c2 = (0.03 * 255) ** 2
    h, w = images[0].shape
    vh, vw = h - win.shape[0] + 1, w - win.shape[1] + 1
    gh, gw = scipy.fft.next_fast_len(h, real=True), scipy.fft.next_fast_len(w, real=True)
    kernel_ft = torch.fft.rfft2(F.pad(win, (0, gw - win.shape[1], 0, gh - win.shape[0]))).conj()

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.fft.irfft2(torch.fft.rfft2(x, s=(gh, gw)) * kernel_ft, s=(gh, gw))
        return out[..., :vh, :vw]

    stack = torch.stack(images)
    mu = local_mean(stack)
    var = local_mean(stack * stack) - mu**2
    ix = torch.tensor([i for i, _ in pairs])
    iy = torch.tensor([j for _, j in pairs])

    def pick(t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return t.index_select(0, i)

    cov = local_mean(pick(stack, ix) * pick(stack, iy)) - pick(mu, ix) * pick(mu, iy)
    cs = F.relu((2 * cov + c2) / (pick(var, ix) + pick(var, iy) + c2))
    return cs.mean(dim=(1, 2))


def gsm_features(img: torch.Tensor) -> torch.Tensor:
    """The 45 global-frequency features of a plane (H, W), values 0..255."""
    hi0, bands = steerable_pyramid(img)
    # Every band enlarged to the plane's size: the finer scale already has it (the float32 rounding is what
    # pyiqa's resize does to it), and the coarser scale's enlargements are also the finer bands' GSM parents.
    up = [resize_f32(b, (hi0.shape[0], hi0.shape[1])) for b in bands]
    sub = gsm_normalise(bands, up[N_BANDS:])
    feats = [ggd_shape(s.reshape(-1)) for s in sub]
    feats += [ggd_shape(torch.cat([sub[i].reshape(-1), sub[i + N_BANDS].reshape(-1)])) for i in range(N_BANDS)]
    across_scales = contrast_structure([*up, hi0], [(i, len(up)) for i in range(len(up))])
    across_orientations = contrast_structure(
        sub[:N_BANDS], [(i, j) for i in range(N_BANDS) for j in range(i + 1, N_BANDS)]
    )
    return torch.cat([torch.stack(feats), across_scales, across_orientations])

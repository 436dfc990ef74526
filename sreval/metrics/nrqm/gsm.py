"""Group 2 of the NRQM features (global frequency): the steerable pyramid's bands, divisively normalised by a
Gaussian-scale-mixture neighbourhood, their GGD shapes, and SSIM contrast-structure across scales and
orientations."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft
import torch

from sreval.metrics.nrqm.stats import F64, gauss_kernel, ggd_shape
from sreval.metrics.nrqm.steerable import N_BANDS, resize_f32, steerable_pyramid

#: Neighbourhood vectors per chunk of the GSM normalisation: a chunk's (k, n) matrix and its product with the
#: inverse covariance (15 × 4096 float64 each, 1 MB together) stay in one core's L2 cache.
GSM_CHUNK_PIXELS = 4096


def _normalise_band(
    band: torch.Tensor, shared: torch.Tensor, pick: torch.Tensor, gb: int, chunk_pixels: int
) -> torch.Tensor:
    """One band's GSM normalisation over its (h − 2) × (w − 2) interior, cropped by the guard band `gb`.

    The neighbourhood of interior pixel (i, j) is the 3×3 window of `band` around it (row-major, as F.unfold
    lays it out; the centre is entry 4), then `shared[pick, i, j]`: the parent and the other orientations,
    taken from the interiors that all bands of the scale share.

    The (k, n) matrix of neighbourhood vectors is built a row chunk at a time: the covariance summed chunk by
    chunk, then the quadratic form on the cropped chunks only (the guard band is discarded anyway). Stacking
    a whole band at once would move its (k, n) matrix through memory several times; a chunk's stays in cache."""
    h, w = band.shape
    k = 9 + pick.numel()
    n_window = k - (N_BANDS - 1)  # window and parent: the divisor pyiqa uses
    ih, iw = h - 2, w - 2

    def neighbourhoods(r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """(k, (r1 − r0)·(c1 − c0)): the neighbourhood vectors of interior rows r0:r1, columns c0:c1."""
        r, c = r1 - r0, c1 - c0
        t = torch.empty(k, r * c, dtype=F64)
        window = band[r0 : r1 + 2, c0 : c1 + 2].unfold(0, 3, 1).unfold(1, 3, 1)  # [i, j, dy, dx]
        t[:9].view(3, 3, r, c).copy_(window.permute(2, 3, 0, 1))
        torch.index_select(shared[:, r0:r1, c0:c1], 0, pick, out=t[9:].view(-1, r, c))
        return t

    cov = torch.zeros(k, k, dtype=F64)
    step = max(1, chunk_pixels // iw)
    for r0 in range(0, ih, step):
        t = neighbourhoods(r0, min(r0 + step, ih), 0, iw)
        cov.addmm_(t, t.T)
    cov /= ih * iw
    # Make the covariance positive semi-definite while keeping its trace.
    evals, evecs = torch.linalg.eigh(cov)
    pos = evals * (evals > 0)
    pos_sum = pos.sum()
    evals = pos * evals.sum() / (pos_sum + (pos_sum == 0).to(F64))
    cov = evecs @ torch.diag(evals) @ evecs.T
    # Row i of t·C⁻¹ is what solving Cᵀ y = tᵢ gives; C⁻ᵀ once, then one product per chunk.
    inv_t = torch.linalg.solve(cov.T, torch.eye(k, dtype=F64))

    oh, ow = ih - 2 * gb, iw - 2 * gb
    quad = torch.empty(oh, ow, dtype=F64)
    step = max(1, chunk_pixels // ow)
    for r0 in range(0, oh, step):
        r1 = min(r0 + step, oh)
        t = neighbourhoods(r0 + gb, r1 + gb, gb, gb + ow)
        torch.sum((inv_t @ t).mul_(t), dim=0, out=quad[r0:r1].view(-1))
    z = quad.div_(n_window).sqrt_()
    mask = z != 0
    centre = band[1 + gb : 1 + gb + oh, 1 + gb : 1 + gb + ow] - band[1:-1, 1:-1].mean()
    g = centre * mask / (z * mask + 1e-12)
    return g - g.mean()


def gsm_normalise(
    bands: list[torch.Tensor], parents: list[torch.Tensor], chunk_pixels: int = GSM_CHUNK_PIXELS
) -> list[torch.Tensor]:
    """Divisive normalisation of each band by its GSM neighbourhood (3×3 window, parent band, the other
    orientations of the same scale), then a guard band of 16 px (8 px at the coarser scale) is removed.

    `parents[i]` is band i + N_BANDS enlarged to the size of band i (for the bands that have a parent).
    The neighbourhood vectors are built `chunk_pixels` at a time, so that the covariance and the quadratic
    form are matrix products over a block that stays in cache."""
    out = []
    for si in range(len(bands) // N_BANDS):
        scale = bands[si * N_BANDS : (si + 1) * N_BANDS]
        scale_parents = parents[si * N_BANDS : (si + 1) * N_BANDS]
        # Interiors of every band, then of every parent, once per scale: each band's neighbourhood takes the
        # other orientations (and its parent) from here.
        shared = torch.stack([b[1:-1, 1:-1] for b in scale] + [p[1:-1, 1:-1] for p in scale_parents])
        for bi, band in enumerate(scale):
            # pyiqa's order after the window: the parent (where there is one), then the other orientations.
            parent = [N_BANDS + bi] if scale_parents else []
            pick = torch.tensor(parent + [ni for ni in range(N_BANDS) if ni != bi])
            out.append(_normalise_band(band, shared, pick, 16 >> si, chunk_pixels))
    return out


@lru_cache(maxsize=4)  # a plane and its cropped orientation bands, for the last two plane sizes
def _window_spectrum(gh: int, gw: int) -> np.ndarray[Any, Any]:
    """DFT over a (gh, gw) grid of SSIM's float32-rounded 11×11 Gaussian window, centred on the origin. The
    window is symmetric, so its spectrum is real: multiplying by it costs half a complex product."""
    win = gauss_kernel(11, 1.5).numpy()
    centred = np.zeros((gh, gw))
    centred[:11, :11] = win
    centred = np.roll(centred, (-5, -5), axis=(0, 1))
    spectrum: np.ndarray[Any, Any] = scipy.fft.fft2(centred).real
    return spectrum


def _local_means(maps: list[torch.Tensor], workers: int) -> list[torch.Tensor]:
    """'Valid' correlations of same-size real maps with the 11×11 window, by FFTs over a grid of fast sizes.

    A circular correlation over a grid at least as large as the map equals the 'valid' one wherever the
    window does not wrap, which is exactly the valid region: what the grid holds beyond the map never reaches
    it. The grid is the map padded to the next sizes whose FFT is fast (a large prime factor would make it
    several times slower; 5-smooth sizes can land on a power-of-two row length, which was up to twice as slow
    as scipy's 11-smooth choice). Two maps go through one complex transform as its real and imaginary parts:
    the window is real and even, so they stay apart. One grid buffer is transformed in place for all maps."""
    h, w = maps[0].shape
    vh, vw = h - 10, w - 10
    gh, gw = scipy.fft.next_fast_len(h, real=False), scipy.fft.next_fast_len(w, real=False)
    spectrum = _window_spectrum(gh, gw)[:, :, None]  # the same real factor for both parts of each value
    buf = np.zeros((gh, gw), dtype=np.complex128)
    parts = buf.view(np.float64).reshape(gh, gw, 2)
    out = []
    for k in range(0, len(maps), 2):
        two = k + 1 < len(maps)
        parts[:h, :w, 0] = maps[k].numpy()
        parts[:h, :w, 1] = maps[k + 1].numpy() if two else 0.0
        ft = scipy.fft.fft2(buf, workers=workers, overwrite_x=True)
        ft.view(np.float64).reshape(gh, gw, 2)[...] *= spectrum
        means = scipy.fft.ifft2(ft, workers=workers, overwrite_x=True)[5 : 5 + vh, 5 : 5 + vw]
        out.append(torch.from_numpy(means.real.copy()))
        if two:
            out.append(torch.from_numpy(means.imag.copy()))
    return out


def contrast_structure(images: list[torch.Tensor], pairs: list[tuple[int, int]]) -> torch.Tensor:
    """Mean SSIM contrast-structure term of each pair (i, j) of the same-size `images` (11×11 Gaussian σ 1.5,
    valid, L = 255, negatives clamped to 0).

    The local means are correlations with the float32-rounded Gaussian window (not exactly separable), done
    with FFTs (`_local_means`); same values as a direct float64 filter up to rounding (~1e-15 relative).
    Maps of like magnitude share a transform (images with images, squares with squares, products with
    products), so that each keeps its own relative precision."""
    c2 = (0.03 * 255) ** 2
    workers = torch.get_num_threads()
    x = [im.to(F64).contiguous() for im in images]
    mu = _local_means(x, workers)
    var = [s.sub_(m * m) for s, m in zip(_local_means([im * im for im in x], workers), mu, strict=True)]
    cross = _local_means([x[i] * x[j] for i, j in pairs], workers)
    out = []
    for (i, j), xy in zip(pairs, cross, strict=True):
        cov = xy.sub_(mu[i] * mu[j])
        cs = cov.mul_(2).add_(c2).div_((var[i] + var[j]).add_(c2))
        out.append(cs.clamp_(min=0).mean())
    return torch.stack(out)


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

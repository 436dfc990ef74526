"""Group 2 of the NRQM features (global frequency): the steerable pyramid's bands, divisively normalised by a
Gaussian-scale-mixture neighbourhood, their GGD shapes, and SSIM contrast-structure across scales and
orientations."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft
import torch

from sreval.metrics.nrqm.parallel import SERIAL, Pieces
from sreval.metrics.nrqm.stats import F64, gauss_kernel, ggd_shape
from sreval.metrics.nrqm.steerable import N_BANDS, resize_f32, steerable_pyramid

#: Neighbourhood vectors per chunk of the GSM normalisation: a chunk's (k, n) matrix and its product with the
#: inverse covariance (15 × 8192 float64 each) stay in cache. Measured on 504×376 and 1016×636 planes: chunks
#: of 4096 to 16384 pixels within ~10–20 % of each other, a whole band at once 1.7–3× slower. The size does not
#: depend on the thread count: the covariance's order of summation, hence the features' last bits, would.
GSM_CHUNK_PIXELS = 8192


def _normalise_band(
    band: torch.Tensor, sources: list[tuple[torch.Tensor, torch.Tensor]], gb: int, chunk_pixels: int
) -> torch.Tensor:
    """One band's GSM normalisation over its (h − 2) × (w − 2) interior, cropped by the guard band `gb`.

    The neighbourhood of interior pixel (i, j) is the 3×3 window of `band` around it (row-major, as F.unfold
    lays it out; the centre is entry 4), then, for each (stack, pick) of `sources`, stack[pick, i, j] (the
    parent, the other orientations) from the interiors of the bands of the scale and of their parents.

    The (k, n) matrix of neighbourhood vectors is built a row chunk at a time: the covariance summed chunk by
    chunk, then the quadratic form on the cropped chunks only (the guard band is discarded anyway). Stacking
    a whole band at once would move its (k, n) matrix through memory several times; a chunk's stays in cache."""
    h, w = band.shape
    k = 9 + sum(pick.numel() for _, pick in sources)
    n_window = k - (N_BANDS - 1)  # window and parent: the divisor pyiqa uses
    ih, iw = h - 2, w - 2

    def neighbourhoods(r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """(k, (r1 − r0)·(c1 − c0)): the neighbourhood vectors of interior rows r0:r1, columns c0:c1."""
        r, c = r1 - r0, c1 - c0
        t = torch.empty(k, r * c, dtype=F64)
        window = band[r0 : r1 + 2, c0 : c1 + 2].unfold(0, 3, 1).unfold(1, 3, 1)  # [i, j, dy, dx]
        t[:9].view(3, 3, r, c).copy_(window.permute(2, 3, 0, 1))
        row = 9
        for stack, pick in sources:
            rows = t[row : row + pick.numel()].view(-1, r, c)
            torch.index_select(stack[:, r0:r1, c0:c1], 0, pick, out=rows)
            row += pick.numel()
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
    scales: list[torch.Tensor],
    parents: torch.Tensor | None,
    chunk_pixels: int = GSM_CHUNK_PIXELS,
    pieces: Pieces = SERIAL,
) -> list[torch.Tensor]:
    """Divisive normalisation of each band by its GSM neighbourhood (3×3 window, parent band, the other
    orientations of the same scale), then a guard band of 16 px (8 px at the coarser scale) is removed; the
    bands in order, finer scale first.

    `scales[s]` holds the (N_BANDS, h, w) bands of scale s; `parents` the coarser scale's bands enlarged to
    the finer scale's size (their parents), or None. The neighbourhood vectors are built `chunk_pixels` at a
    time, so that the covariance and the quadratic form are matrix products over a block that stays in
    cache. Each band is one of the `pieces`."""
    jobs = []
    for si, scale in enumerate(scales):
        interiors = scale[:, 1:-1, 1:-1]
        for bi in range(N_BANDS):
            # pyiqa's order after the window: the parent (where there is one), then the other orientations.
            others = torch.tensor([ni for ni in range(N_BANDS) if ni != bi])
            sources = [(interiors, others)]
            if si == 0 and parents is not None:
                sources.insert(0, (parents[:, 1:-1, 1:-1], torch.tensor([bi])))
            jobs.append((scale[bi], sources, 16 >> si))
    return pieces.map(lambda job: _normalise_band(*job, chunk_pixels), jobs)


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


def _fft_len(n: int) -> int:
    """The smallest size >= n without prime factors above 7. A large prime factor makes a transform several
    times slower; among the sizes scipy calls fast, 7-smooth ones came within 7 % of the best grid on every
    plane size measured (504×376 to 1016×760 and their crops), where 5-smooth or 11-smooth ones were up to
    30 % slower on some."""
    m = n
    while True:
        rest = m
        for p in (2, 3, 5, 7):
            while rest % p == 0:
                rest //= p
        if rest == 1:
            return m
        m += 1


#: A map to filter, as the product of two factors (the second None: the first factor alone).
Factors = tuple[torch.Tensor, torch.Tensor | None]


def _local_means(groups: list[list[Factors]], pieces: Pieces) -> list[list[torch.Tensor]]:
    """'Valid' correlations with the 11×11 window of same-size real maps, by FFTs over a grid of fast sizes;
    for each group of maps, their local means in order.

    A circular correlation over a grid at least as large as the map equals the 'valid' one wherever the
    window does not wrap, which is exactly the valid region: what the grid holds beyond the map never reaches
    it. The grid is the map padded to sizes whose FFT is fast (`_fft_len`). Two maps of a group go through
    one complex transform as its real and imaginary parts: the window is real and even, so they stay apart.
    Each transform is one of the `pieces`, and forms its maps' products itself."""
    h, w = groups[0][0][0].shape
    vh, vw = h - 10, w - 10
    gh, gw = _fft_len(h), _fft_len(w)
    spectrum = _window_spectrum(gh, gw)

    def transform(maps: list[Factors]) -> list[torch.Tensor]:
        buf = np.zeros((gh, gw), dtype=np.complex128)
        parts = buf.view(np.float64).reshape(gh, gw, 2)
        for part, (a, b) in enumerate(maps):
            if b is None:
                parts[:h, :w, part] = a.numpy()
            else:
                np.multiply(a.numpy(), b.numpy(), out=parts[:h, :w, part])
        ft = scipy.fft.fft2(buf, workers=pieces.workers, overwrite_x=True)
        ft *= spectrum
        means = scipy.fft.ifft2(ft, workers=pieces.workers, overwrite_x=True)[5 : 5 + vh, 5 : 5 + vw]
        return [torch.from_numpy(means.real.copy()), torch.from_numpy(means.imag.copy())][: len(maps)]

    jobs = [(g, group[k : k + 2]) for g, group in enumerate(groups) for k in range(0, len(group), 2)]
    done = pieces.map(lambda job: transform(job[1]), jobs)
    out: list[list[torch.Tensor]] = [[] for _ in groups]
    for (g, _), means in zip(jobs, done, strict=True):
        out[g] += means
    return out


def contrast_structure(
    images: list[torch.Tensor], pairs: list[tuple[int, int]], pieces: Pieces = SERIAL
) -> torch.Tensor:
    """Mean SSIM contrast-structure term of each pair (i, j) of the same-size `images` (11×11 Gaussian σ 1.5,
    valid, L = 255, negatives clamped to 0).

    The local means are correlations with the float32-rounded Gaussian window (not exactly separable), done
    with FFTs (`_local_means`); same values as a direct float64 filter up to rounding (~1e-15 relative).
    Maps of like magnitude share a transform (images with images, squares with squares, products with
    products), so that each keeps its own relative precision."""
    c2 = (0.03 * 255) ** 2
    x = [im.to(F64).contiguous() for im in images]
    mu, sq, cross = _local_means(
        [[(im, None) for im in x], [(im, im) for im in x], [(x[i], x[j]) for i, j in pairs]], pieces
    )
    var = pieces.map(lambda i: sq[i].sub_(mu[i] * mu[i]), range(len(x)))

    def mean_cs(k: int) -> torch.Tensor:
        i, j = pairs[k]
        cov = cross[k].sub_(mu[i] * mu[j])
        cs = cov.mul_(2).add_(c2).div_((var[i] + var[j]).add_(c2))
        return cs.clamp_(min=0).mean()

    return torch.stack(pieces.map(mean_cs, range(len(pairs))))


def gsm_features(img: torch.Tensor, pieces: Pieces = SERIAL) -> torch.Tensor:
    """The 45 global-frequency features of a plane (H, W), values 0..255."""
    hi0, (fine, coarse) = steerable_pyramid(img, pieces)
    size = (hi0.shape[0], hi0.shape[1])
    # Every band enlarged to the plane's size: the finer scale already has it (the float32 rounding is what
    # pyiqa's resize does to it), and the coarser scale's enlargements are also the finer bands' GSM parents.
    parents = torch.empty(N_BANDS, *size, dtype=F64)
    up = pieces.map(
        lambda b: (
            resize_f32(fine[b], size) if b < N_BANDS else resize_f32(coarse[b - N_BANDS], size, parents[b - N_BANDS])
        ),
        range(2 * N_BANDS),
    )
    sub = gsm_normalise([fine, coarse], parents, pieces=pieces)
    across_scales = contrast_structure([*up, hi0], [(i, len(up)) for i in range(len(up))], pieces)
    across_orientations = contrast_structure(
        sub[:N_BANDS], [(i, j) for i in range(N_BANDS) for j in range(i + 1, N_BANDS)], pieces
    )
    # GGD shape of each band, then of each orientation's two scales pooled.
    groups = [[s] for s in sub] + [[sub[i], sub[i + N_BANDS]] for i in range(N_BANDS)]
    feats = pieces.map(lambda g: ggd_shape(torch.cat([s.reshape(-1) for s in g])), groups)
    return torch.cat([torch.stack(feats), across_scales, across_orientations])

"""Ma et al.'s no-reference quality metric for super-resolution (NRQM, "Ma's score"), in torch.

Chao Ma, Chih-Yuan Yang, Xiaokang Yang, Ming-Hsuan Yang, "Learning a no-reference quality metric for
single-image super-resolution", CVIU 2017. PIRM 2018 uses it as PI = ½((10 − Ma) + NIQE).

The numbers follow pyiqa's port (`pyiqa.archs.nrqm_arch`, the implementation the PIRM community now
calls), re-implemented here and checked against pyiqa's feature vectors (tests/test_nrqm.py). pyiqa itself
mirrors the authors' MATLAB code; where it deviates from MATLAB we follow pyiqa, including its float32
quirks (float32 filter kernels and frequency masks, a float32 bicubic resize), because that is what makes
the features equal.

Input: one float64 luma plane (H, W) with values 0..255. The caller chooses the plane: the PIRM protocol
(and pyiqa's PI) uses rounded BT.601 Y (MATLAB `rgb2ycbcr` of a uint8 image) with 4 px shaved from every
border. (pyiqa's stand-alone `nrqm` metric defaults to full-range YIQ luma and no shave instead.) pyiqa does
nothing else to the plane before the features: no resize, no further crop.

Three feature groups, each regressed by its own random forest, then combined linearly:

1. local frequency (18): DCT statistics of 7×7 blocks (stride 3) on a 3-level Gaussian pyramid of plane/255;
   per level: GGD shape (mean of the lowest 10 % + 1, mean of all), coefficient of variation (mean of the
   highest 10 %, mean of all), orientation variance (highest 10 %, all).
2. global frequency (45): complex steerable pyramid (2 scales × 6 orientations) of the plane, divisively
   normalised with a Gaussian-scale-mixture neighbourhood; GGD shape of each of the 12 subbands, of the 6
   cross-scale pairs, SSIM contrast-structure between each band and the high-pass residual (12) and
   between the 15 orientation pairs of the finer scale.
3. spatial (75): singular values of the matrix of distinct 5×5 blocks on each pyramid level (25 per level).

The model file (`NRQM_model.mat`, as pyiqa downloads it; the authors' `model.mat`) is a MATLAB struct
`model` with fields `rf` (a 3-element cell of `regRF_train` forests, one per group, in the order above) and
`linear` (4×1: intercept and one weight per forest); see `load_nrqm_model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sreval.errors import SrevalError

F64 = torch.float64
#: Lengths of the three feature vectors (local frequency, global frequency, spatial).
FEATURE_SIZES = (18, 45, 75)
_EPS_GGD = 1e-7
_N_BANDS = 6


def _as_f32_in_f64(a: np.ndarray[Any, Any]) -> torch.Tensor:
    """pyiqa builds several constants in float64, stores them as float32 and multiplies them into float64."""
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(torch.float32).to(F64)


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
    return _as_f32_in_f64(h)


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


# --- steerable pyramid and GSM normalisation (group 2) ---------------------------------------------------


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
    return _as_f32_in_f64(np.interp(grid.ravel(), xs, ys).reshape(grid.shape))


def _angle_table() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Angular profile cos^(K−1) of a K-band steerable pyramid (one lobe), on a 1024-per-π table."""
    lut = 1024
    xcosn = np.pi * np.arange(-(2 * lut + 1), lut + 2) / lut
    alpha = (xcosn + np.pi) % (2 * np.pi) - np.pi
    order = _N_BANDS - 1
    const = np.power(2, 2 * order) * np.square(float(math.factorial(order))) / (
        _N_BANDS * float(math.factorial(2 * order)))
    ycosn = 2 * np.sqrt(const) * np.power(np.cos(xcosn), order) * (np.abs(alpha) < np.pi / 2)
    return xcosn, ycosn


def _steerable_pyramid(img: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
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
    rot = complex(np.power(complex(0, -1), _N_BANDS - 1))

    dft = torch.fft.fftshift(torch.fft.fft2(img))
    hi0 = torch.fft.ifft2(torch.fft.ifftshift(dft * _mask(log_rad, xr, yr))).real
    lodft = dft * _mask(log_rad, xr, yir)

    bands: list[torch.Tensor] = []
    abs_yir = np.abs(np.sqrt(1 - yr**2))
    for level in range(2):
        xr = xr - 1.0  # one octave down
        himask = _mask(log_rad, xr, yr)
        for b in range(_N_BANDS):
            anglemask = _mask(angle, xcosn + np.pi * b / _N_BANDS, ycosn)
            band = lodft * anglemask * himask
            band = torch.complex(rot.real * band.real - rot.imag * band.imag,
                                 rot.real * band.imag + rot.imag * band.real)
            bands.append(torch.fft.ifft2(torch.fft.ifftshift(band)).real)
        if level == 1:
            break
        dims = np.array(lodft.shape)
        start = (np.ceil((dims + 0.5) / 2) - np.ceil((np.ceil((dims - 0.5) / 2) + 0.5) / 2)).astype(int)
        end = (start + np.ceil((dims - 0.5) / 2)).astype(int)
        log_rad = log_rad[start[0]:end[0], start[1]:end[1]]
        angle = angle[start[0]:end[0], start[1]:end[1]]
        lodft = _mask(log_rad, xr, abs_yir) * lodft[start[0]:end[0], start[1]:end[1]]
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
    if dim == 0:
        padded = x[idx]
        prods = [padded[rows + k] * weight[k][:, None] for k in range(taps)]
    else:
        padded = x[:, idx]
        prods = [padded[:, rows + k] * weight[k][None, :] for k in range(taps)]
    return torch.stack(prods).sum(dim=0)


def _resize_f32(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """pyiqa's imresize(x, sizes=size) for enlargement: computed in float32 (its cast), returned as float64."""
    y = x.to(torch.float32)
    y = _resize_dim_f32(y, 0, size[0])
    y = _resize_dim_f32(y, 1, size[1])
    return y.to(F64)


def _gsm_normalise(bands: list[torch.Tensor]) -> list[torch.Tensor]:
    """Divisive normalisation of each band by its GSM neighbourhood (3×3 window, parent band, the other
    orientations of the same scale), then a guard band of 16 px (8 px at the coarser scale) is removed."""
    out = []
    for idx, band in enumerate(bands):
        si, bi = divmod(idx, _N_BANDS)
        h, w = band.shape
        cols = [F.unfold(band[None, None], 3)[0].T]  # (n, 9): 3×3 window, row-major
        n_window = 9
        if idx + _N_BANDS < len(bands):
            parent = _resize_f32(bands[idx + _N_BANDS], (h, w))
            cols.append(parent[1:-1, 1:-1].reshape(-1, 1))
            n_window += 1
        for ni in range(_N_BANDS):
            if ni != bi:
                cols.append(bands[si * _N_BANDS + ni][1:-1, 1:-1].reshape(-1, 1))
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
    hi0, bands = _steerable_pyramid(img)
    sub = _gsm_normalise(bands)
    feats = [_ggd_shape(s.reshape(-1)) for s in sub]
    feats += [_ggd_shape(torch.cat([sub[i].reshape(-1), sub[i + _N_BANDS].reshape(-1)])) for i in range(_N_BANDS)]
    up = [_resize_f32(b, (hi0.shape[0], hi0.shape[1])) for b in bands]
    across_scales = _contrast_structure([(u, hi0) for u in up])
    across_orientations = _contrast_structure(
        [(sub[i], sub[j]) for i in range(_N_BANDS) for j in range(i + 1, _N_BANDS)])
    return torch.cat([torch.stack(feats), across_scales, across_orientations])


# --- distinct-block singular values (group 3) -----------------------------------------------------------


def _block_singular_values(level: torch.Tensor) -> torch.Tensor:
    h, w = level.shape
    padded = F.pad(level, (0, (-w) % 5, 0, (-h) % 5))
    blocks = F.unfold(padded[None, None], 5, stride=5)[0].T  # (n_blocks, 25)
    values: torch.Tensor = torch.linalg.svdvals(blocks)
    return values


# --- public API -------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Forest:
    """One regression forest in randomForest's array layout, (nodes, trees) each, indices 1-based:
    left/right daughter (0 = terminal), split variable and split point, node prediction."""

    left: torch.Tensor
    right: torch.Tensor
    variable: torch.Tensor
    threshold: torch.Tensor
    value: torch.Tensor

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Mean over trees of the leaf reached by going left when feature <= split point (pyiqa's rule)."""
        x = features.to(F64)
        n_nodes, n_trees = self.left.shape
        trees = torch.arange(n_trees)
        node = torch.zeros(n_trees, dtype=torch.long)
        prev = node.clone()
        leaf = torch.full((n_trees,), -1, dtype=torch.long)
        for _ in range(n_nodes):
            active = leaf < 0
            if not bool(active.any()):
                break
            var = self.variable[node, trees] - 1  # 0 at a terminal node → the last feature, as in pyiqa
            go_left = x[var] <= self.threshold[node, trees]
            nxt = torch.where(go_left, self.left[node, trees], self.right[node, trees]) - 1
            prev = torch.where(active, node, prev)
            leaf = torch.where(active & (nxt < 0), node, leaf)
            node = torch.where(active, nxt.clamp(min=0), node)
        leaf = torch.where(leaf < 0, prev, leaf)  # no terminal node within n_nodes steps: pyiqa keeps the last
        return self.value[leaf, trees].mean()


@dataclass(frozen=True)
class NrqmModel:
    """Three forests (local frequency, global frequency, spatial) and the linear weights [b0, b1, b2, b3]:
    score = b0 + b1·rf1 + b2·rf2 + b3·rf3."""

    forests: tuple[Forest, Forest, Forest]
    linear: torch.Tensor
    source: str


_FOREST_FIELDS = {"lDau": "left", "rDau": "right", "mbest": "variable", "upper": "threshold", "avnode": "value"}


def _field(path: Path, record: Any, name: str, where: str) -> Any:
    names = record.dtype.names or ()
    if name not in names:
        raise SrevalError(f"{path}: not an NRQM model file: {where} has no field '{name}' (fields: {', '.join(names)})")
    return record[name]


def _single(path: Path, value: Any, where: str) -> Any:
    if not isinstance(value, np.ndarray) or value.size != 1:
        raise SrevalError(f"{path}: not an NRQM model file: {where} should be a 1×1 struct")
    return value.reshape(-1)[0]


def load_nrqm_model(path: Path) -> NrqmModel:
    """Read Ma's model file (pyiqa's `NRQM_model.mat`, the authors' `model.mat`).

    Format (MATLAB .mat, read with scipy.io.loadmat): a variable `model`, a 1×1 struct with
    - `rf`: a cell of 3 `regRF_train` structs (1×3 in pyiqa's file; 3×1 as the authors' training script
      saves it is accepted too), one per feature group; each has the randomForest arrays `lDau`, `rDau`
      (int, nodes×trees, 1-based daughter index, 0 for a terminal node), `nodestatus`, `nrnodes`, `upper`
      (split point), `avnode` (node prediction), `mbest` (1-based split variable), `ndtree`, `ntree`, …;
      pyiqa reads fields 0, 1, 4, 5, 6 by position, i.e. lDau, rDau, upper, avnode, mbest; we read them by name;
    - `linear`: 4×1 double, the robust-fit weights [intercept, rf1, rf2, rf3].
    """
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except FileNotFoundError as e:
        raise SrevalError(f"NRQM model file not found: {path}") from e
    except Exception as e:  # scipy raises several types for non-.mat content
        raise SrevalError(f"{path}: cannot read as a MATLAB .mat file ({e})") from e
    if "model" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise SrevalError(f"{path}: not an NRQM model file: no variable 'model' (variables: {found})")
    model = _single(path, mat["model"], "variable 'model'")
    if not isinstance(model, np.void):
        raise SrevalError(f"{path}: not an NRQM model file: variable 'model' is not a struct")
    rf = np.asarray(_field(path, model, "rf", "model"))
    linear = np.asarray(_field(path, model, "linear", "model"), dtype=np.float64).reshape(-1)
    if linear.size != 4:
        raise SrevalError(f"{path}: model.linear should hold 4 weights, has {linear.size}")
    cells = rf.reshape(-1)
    if rf.dtype != object or cells.size != 3:
        raise SrevalError(f"{path}: model.rf should be a cell of 3 forests, got shape {rf.shape}")
    forests = []
    for i, cell in enumerate(cells):
        rec = _single(path, cell, f"model.rf{{{i + 1}}}")
        arrays: dict[str, torch.Tensor] = {}
        for field, attr in _FOREST_FIELDS.items():
            a = np.asarray(_field(path, rec, field, f"model.rf{{{i + 1}}}"))
            if a.ndim != 2 or a.size == 0:
                raise SrevalError(f"{path}: model.rf{{{i + 1}}}.{field} should be a nodes×trees array, "
                                  f"got shape {a.shape}")
            is_index = attr in ("left", "right", "variable")
            arrays[attr] = torch.from_numpy(a.astype(np.int64 if is_index else np.float64))
        shapes = {tuple(t.shape) for t in arrays.values()}
        if len(shapes) != 1:
            raise SrevalError(f"{path}: model.rf{{{i + 1}}} arrays differ in shape: {sorted(shapes)}")
        n_nodes = arrays["left"].shape[0]
        for attr, top, what in (("left", n_nodes, "lDau"), ("right", n_nodes, "rDau"),
                                ("variable", FEATURE_SIZES[i], "mbest")):
            idx = arrays[attr]
            if bool((idx < 0).any()) or bool((idx > top).any()):
                raise SrevalError(f"{path}: model.rf{{{i + 1}}}.{what} has values outside 0..{top}")
        forests.append(Forest(**arrays))
    return NrqmModel(forests=(forests[0], forests[1], forests[2]), linear=torch.from_numpy(linear), source=str(path))


def nrqm_score(features: tuple[torch.Tensor, torch.Tensor, torch.Tensor], model: NrqmModel) -> torch.Tensor:
    """Ma's score (float64 scalar): b0 + Σ b_g · forest_g(features_g), each forest the mean over its trees."""
    preds = [forest.predict(f) for forest, f in zip(model.forests, features, strict=True)]
    return torch.stack([torch.ones((), dtype=F64), *preds]) @ model.linear

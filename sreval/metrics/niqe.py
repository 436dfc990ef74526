"""NIQE exactly as the LIVE MATLAB release (`computequality.m`, the code PIRM 2018's `calc_NIQE` calls), in float64.

Per image: crop to whole blocks; at two scales (the second from MATLAB `imresize(im, 0.5)`), compute the MSCN
coefficients with a 7×7 Gaussian (σ = 7/6, 'replicate' border) and fit, per block (96×96, then 48×48), an AGGD to
the coefficients and to the products with 4 circularly shifted copies (`circshift` *within the block*, shifts
[0 1; 1 0; 1 1; 1 −1] as in the LIVE `computefeature.m`); 18 features per scale. The score is the Mahalanobis-like
distance between the pristine model and the blocks' Gaussian fit: `nanmean` of the features, `nancov` (rows with
any NaN dropped; one complete row gives a zero matrix), MATLAB's `pinv`.

The one deliberate difference from MATLAB. Where the Gaussian-weighted deviations of a 7×7 window from its centre
cancel exactly (a flat window, a linear ramp, mirror-image neighbours), the MSCN coefficient is 0 in exact
arithmetic, but MATLAB's `imfilter` leaves rounding noise of about ±1e-14 whose sign depends on its summation order.
The AGGD fit counts negative and positive coefficients, so that noise moves the score: we differ from MATLAB by up
to 0.03 on the pyiqa calibration images with flat areas (pyiqa's own port by 0.44), two float summation orders
differ by 0.34 on Set5 `head` (dark background), and CPU and GPU convolutions would differ too. Here deviations
from the centre are summed per mirror pair and ring of equal weight, so such windows give exactly 0 on every
device. Images without such windows match MATLAB to ~1e-13 (`tests/test_niqe.py` gives the numbers).

Degenerate inputs are refused rather than scored: an image smaller than one block, a single block (MATLAB's
`nanmean`/`nancov` then treat the 36 features as one vector and return a meaningless number), and an image whose
every block has an undefined feature (a flat image; MATLAB's `pinv` fails on the all-NaN covariance).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.io
import scipy.special
import torch
import torch.nn.functional as F

from sreval.errors import ParameterError, SrevalError
from sreval.matlab.imresize import imresize_float

FEATURES_PER_SCALE = 18
N_FEATURES = 2 * FEATURES_PER_SCALE
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # LIVE computefeature.m (BasicSR's port uses the same)
_RADIUS = 3  # fspecial('gaussian', 7, 7/6)
_SIGMA = 7 / 6


#: The LIVE pristine model as sreval ships it (package data): converted once from the release's
#: modelparameters.mat, every float64 written as its shortest round-trip repr. NIQE-NOTICE.txt beside it holds
#: the LIVE copyright notice that permits copying it.
SHIPPED_TABLE = "niqe_pristine.json"


@dataclass(frozen=True)
class NiqeModel:
    """The pristine multivariate Gaussian: `mu` (36,) and `cov` (36, 36), float64."""

    mu: torch.Tensor
    cov: torch.Tensor

    def digest(self) -> str:
        """SHA-256 of the parameters' float64 bytes: the same for every file that holds the same numbers."""
        digest = hashlib.sha256()
        for t in (self.mu, self.cov):
            digest.update(t.detach().cpu().to(torch.float64).contiguous().numpy().astype("<f8").tobytes())
        return digest.hexdigest()


def _read_table(path: Path) -> dict[str, np.ndarray]:
    """A JSON table with `mu` and `cov` lists (sreval's shipped format)."""
    table = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(table, dict):
        raise ValueError("not a JSON object")
    return {key: np.asarray(table[key], dtype=np.float64) for key in ("mu", "cov") if key in table}


def _model(arrays: dict[str, np.ndarray], keys: tuple[str, str], where: str) -> NiqeModel:
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise SrevalError(f"NIQE model {where} lacks {', '.join(missing)} (has: {', '.join(sorted(arrays))})")
    mu, cov = (np.asarray(arrays[key]) for key in keys)
    if mu.size != N_FEATURES or cov.shape != (N_FEATURES, N_FEATURES):
        raise SrevalError(
            f"NIQE model {where}: expected a 36-vector and a 36x36 matrix, got {mu.shape} and {cov.shape}"
        )
    if not (np.issubdtype(mu.dtype, np.floating) and np.issubdtype(cov.dtype, np.floating)):
        raise SrevalError(f"NIQE model {where}: parameters must be floating point, got {mu.dtype} and {cov.dtype}")
    if not (np.isfinite(mu).all() and np.isfinite(cov).all()):
        raise SrevalError(f"NIQE model {where}: parameters contain NaN or Inf")
    return NiqeModel(torch.from_numpy(mu.astype(np.float64).reshape(-1)), torch.from_numpy(cov.astype(np.float64)))


def load_niqe_model(path: Path) -> NiqeModel:
    """Read a NIQE model file: the LIVE `modelparameters.mat` (mu_prisparam, cov_prisparam), BasicSR's `.npz`
    (mu_pris_param, cov_pris_param) or a `.json` table like the one sreval ships (mu, cov)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: np.asarray(data[key]) for key in data.files}
            keys = ("mu_pris_param", "cov_pris_param")
        elif suffix == ".json":
            arrays, keys = _read_table(path), ("mu", "cov")
        else:
            arrays = scipy.io.loadmat(path)
            keys = ("mu_prisparam", "cov_prisparam")
    except Exception as exc:  # scipy/numpy/json raise many types for a damaged or foreign file
        raise SrevalError(f"cannot read the NIQE model {path}: {exc}") from exc
    return _model(arrays, keys, str(path))


@functools.cache
def _shipped_arrays() -> tuple[np.ndarray, np.ndarray]:
    text = resources.files("sreval.metrics").joinpath("data", SHIPPED_TABLE).read_text(encoding="utf-8")
    table = json.loads(text)
    return np.asarray(table["mu"], dtype=np.float64), np.asarray(table["cov"], dtype=np.float64)


def shipped_niqe_model() -> NiqeModel:
    """The LIVE pristine model that ships with sreval: NIQE works with no model file and offline."""
    mu, cov = _shipped_arrays()
    return _model({"mu": mu.copy(), "cov": cov.copy()}, ("mu", "cov"), f"sreval/metrics/data/{SHIPPED_TABLE}")


@functools.cache
def _window_rings() -> tuple[tuple[float, tuple[tuple[int, int], ...]], ...]:
    """MATLAB's window (fspecial, then divided by its sum again) by ring: (weight, offsets) per x²+y².

    All offsets of a ring carry the same double, so summing a ring's deviations before weighting is the same sum.
    Each listed offset stands for itself and its mirror image (−dy, −dx). The centre (deviation 0) is left out.
    """
    span = range(-_RADIUS, _RADIUS + 1)
    raw = {(y, x): math.exp(-(x * x + y * y) / (2 * _SIGMA * _SIGMA)) for y in span for x in span}
    total = math.fsum(raw.values())
    window = {k: v / total for k, v in raw.items()}
    total = math.fsum(window.values())
    rings: dict[int, list[tuple[int, int]]] = {}
    for y, x in window:
        if (y, x) > (0, 0):  # one of each mirror pair
            rings.setdefault(y * y + x * x, []).append((y, x))
    return tuple((window[offsets[0]] / total, tuple(offsets)) for _, offsets in sorted(rings.items()))


def _uint8_valued(x: torch.Tensor) -> bool:
    return bool(((x >= 0) & (x <= 255) & (x == torch.round(x))).all())


def _mscn(x: torch.Tensor) -> torch.Tensor:
    """(im − mu) / (sigma + 1) of (N, 1, H, W) with mu, sigma from the 7×7 window, 'replicate' border.

    mu − im = Σ w·(x − im) and sigma² = Σ w·(x − im)² − (mu − im)², identical to MATLAB's imfilter(im) and
    imfilter(im.^2) − mu² in exact arithmetic. Deviations are summed per mirror pair and then per ring of equal
    weight before weighting, so windows whose weighted deviations cancel give exactly 0 (module docstring):
    always for flat and mirror-symmetric windows (ramps), and for any cancellation on an integer plane. Only
    elementwise IEEE operations in a fixed order are used (no fused multiply-add): CPU and GPU give the same bits.
    """
    h, w = x.shape[-2:]
    r = _RADIUS
    # On a uint8-valued plane (the first scale) every deviation, pair sum, square and ring sum is an integer
    # below 2**24, so float32 holds them exactly: the same numbers as float64 for half the memory traffic.
    # Only the weighting happens in float64.
    work = x.to(torch.float32) if _uint8_valued(x) else x
    padded = F.pad(work, (r, r, r, r), mode="replicate")

    def deviation(dy: int, dx: int, out: torch.Tensor) -> torch.Tensor:
        return torch.sub(padded[..., r + dy : r + dy + h, r + dx : r + dx + w], work, out=out)

    a, b = torch.empty_like(work), torch.empty_like(work)
    dev, var = torch.zeros_like(x), torch.zeros_like(x)
    for weight, offsets in _window_rings():
        ring_sum, ring_sq = torch.zeros_like(work), torch.zeros_like(work)
        for dy, dx in offsets:
            deviation(dy, dx, a)
            deviation(-dy, -dx, b)
            ring_sum.add_(a + b)
            ring_sq.add_(a.mul_(a)).add_(b.mul_(b))
        dev.add_(ring_sum.to(torch.float64).mul_(weight))
        var.add_(ring_sq.to(torch.float64).mul_(weight))
    var.sub_(dev * dev)
    return dev.neg_().div_(var.abs_().sqrt_().add_(1))


@functools.cache
def _aggd_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The AGGD grid: alpha = 0.2:0.001:10 as MATLAB's colon builds it, r(alpha), and the gamma ratios per alpha.

    MATLAB's colon fills a:d:b from both ends (a + k·d for the first half, b − k·d for the second, (a+b)/2 in the
    middle). r(alpha) = Γ(2/α)² / (Γ(1/α)Γ(3/α)) is strictly increasing on the grid, which the nearest-point search
    relies on (checked in the tests).
    """
    a, step, b = 0.2, 0.001, 10.0
    n = round((b - a) / step)
    k = np.arange(n // 2 + 1)
    alpha = np.empty(n + 1)
    alpha[k] = a + k * step
    alpha[n - k] = b - k * step
    if n % 2 == 0:
        alpha[n // 2] = (a + b) / 2
    g1, g2, g3 = (scipy.special.gamma(m / alpha) for m in (1, 2, 3))
    return alpha, g2**2 / (g1 * g3), np.sqrt(g1 / g3), g2 / g1


def _grid_index(r_grid: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MATLAB `[~, i] = min((r_grid − target).^2)` for a sorted grid: the nearer neighbour, the first on a tie.

    A NaN or Inf target makes every squared difference NaN or Inf, and MATLAB's min then returns index 1.
    """
    finite = torch.isfinite(target)
    t = torch.where(finite, target, 0.0).contiguous()
    hi = torch.searchsorted(r_grid, t).clamp_(max=r_grid.numel() - 1)
    lo = (hi - 1).clamp_(min=0)
    pick_lo = (r_grid[lo] - t) ** 2 <= (r_grid[hi] - t) ** 2
    return torch.where(finite, torch.where(pick_lo, lo, hi), 0)


def _aggd(v: torch.Tensor, tables: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """LIVE `estimateaggdparam` on the last dimension: (alpha, beta_l, beta_r, gamma(2/α)/gamma(1/α)).

    Masks instead of boolean indexing keep it batched; an empty side gives 0/0 = NaN, as MATLAB's mean([]) does.
    """
    alpha_grid, r_grid, beta_factor, mean_factor = tables
    neg, pos, sq = v < 0, v > 0, v * v
    left = torch.sqrt(torch.where(neg, sq, 0.0).sum(-1) / neg.sum(-1))
    right = torch.sqrt(torch.where(pos, sq, 0.0).sum(-1) / pos.sum(-1))
    g = left / right
    rhat = v.abs().mean(-1) ** 2 / sq.mean(-1)
    rhatnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    i = _grid_index(r_grid, rhatnorm)
    return alpha_grid[i], left * beta_factor[i], right * beta_factor[i], mean_factor[i]


def _scale_features(structdis: torch.Tensor, block: int, tables: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """`blkproc(structdis, [block block], @computefeature)` → (N, n_blocks, 18), blocks column-major like MATLAB."""
    n, _, h, w = structdis.shape
    rows, cols = h // block, w // block
    blocks = structdis.reshape(n, rows, block, cols, block).permute(0, 3, 1, 2, 4).reshape(n, -1, block, block)
    alpha, beta_l, beta_r, _ = _aggd(blocks.flatten(-2), tables)
    feats = [alpha, (beta_l + beta_r) / 2]
    for shift in _SHIFTS:
        pair = blocks * torch.roll(blocks, shift, dims=(-2, -1))
        alpha, beta_l, beta_r, mean_factor = _aggd(pair.flatten(-2), tables)
        feats += [alpha, (beta_r - beta_l) * mean_factor, beta_l, beta_r]
    return torch.stack(feats, dim=-1)


def _check_block(block: int) -> None:
    if isinstance(block, bool) or not isinstance(block, int) or block < 2 or block % 2:
        raise ParameterError(
            "block", f"block (the NIQE block size) must be an even integer >= 2 (scale 2 uses block/2), got {block!r}"
        )


def _batch_features(x: torch.Tensor, block: int) -> torch.Tensor:
    """(N, 1, H, W) real → (N, n_blocks, 36) float64: `computequality` up to `distparam`."""
    _check_block(block)
    if x.dim() != 4 or x.shape[1] != 1:
        raise SrevalError(f"NIQE expects one plane per image, shape (N, 1, H, W), got {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise SrevalError(f"NIQE expects a real-valued plane on the 0..255 scale, got {x.dtype}")
    h, w = x.shape[-2:]
    if h < block or w < block:
        raise SrevalError(f"NIQE needs an image of at least {block}x{block} pixels (one block), got {h}x{w}")
    x = x.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise SrevalError("NIQE: the plane contains NaN or Inf")
    x = x[..., : h // block * block, : w // block * block]
    tables = tuple(torch.from_numpy(t).to(x.device) for t in _aggd_tables())
    per_scale = []
    for scale in (1, 2):
        per_scale.append(_scale_features(_mscn(x), block // scale, tables))
        if scale == 1:
            x = imresize_float(x, 0.5)
    return torch.cat(per_scale, dim=-1)


def niqe_features(plane: torch.Tensor, block: int = 96) -> torch.Tensor:
    """Per-block NIQE features of one image: plane (H, W) or (1, 1, H, W) on 0..255 → (n_blocks, 36) float64.

    Columns are [scale 1 (18) | scale 2 (18)], rows are blocks in MATLAB's `blkproc` order (down the columns).
    NaN marks a feature MATLAB leaves undefined (e.g. a side of the AGGD with no values in a flat block).
    """
    if plane.dim() == 2:
        plane = plane[None, None]
    if plane.dim() != 4 or plane.shape[:2] != (1, 1):
        raise SrevalError(f"niqe_features expects one plane, (H, W) or (1, 1, H, W), got {tuple(plane.shape)}")
    return _batch_features(plane, block)[0]


def _matlab_pinv(a: torch.Tensor) -> torch.Tensor:
    """MATLAB `pinv`: drop singular values <= max(size) · eps(largest singular value)."""
    u, s, vh = torch.linalg.svd(a)
    largest = s[..., :1]
    tol = max(a.shape[-2:]) * (torch.nextafter(largest, torch.full_like(largest, math.inf)) - largest)
    s_inv = torch.where(s > tol, 1 / s, 0.0)
    inverse: torch.Tensor = (vh.mT * s_inv[..., None, :]) @ u.mT
    return inverse


def niqe(plane: torch.Tensor, model: NiqeModel, block: int = 96) -> torch.Tensor:
    """NIQE of each image of a plane batch (N, 1, H, W) on the 0..255 scale → (N,) float64, lower is better.

    The caller chooses the plane: PIRM 2018 scores MATLAB Y (rgb2ycbcr, uint8) with 4 px shaved; the LIVE
    `computequality` itself turns an RGB image into rgb2gray. Runs on the plane's device.
    """
    feats = _batch_features(plane, block)
    n_images, n_blocks, _ = feats.shape
    if n_blocks < 2:
        h, w = plane.shape[-2:]
        raise SrevalError(
            f"NIQE needs at least 2 blocks of {block}x{block} pixels, got one from a {h}x{w} image "
            "(MATLAB's nanmean/nancov would treat the one block's 36 features as a single vector)"
        )
    nan = feats.isnan()
    # nanmean: per column over the non-NaN entries.
    mu = torch.where(nan, 0.0, feats).sum(1) / (~nan).sum(1)
    # nancov: rows without any NaN; normalised by n - 1, and a zero matrix for a single complete row.
    complete = ~nan.any(-1)
    n_complete = complete.sum(1)
    if bool((n_complete == 0).any()):
        bad = [i for i, c in enumerate(n_complete.tolist()) if c == 0]
        raise SrevalError(
            f"NIQE is undefined for an image without texture: every {block}x{block} block of image(s) {bad} "
            "of the batch has undefined features (flat areas)"
        )
    rows = torch.where(complete[..., None], feats, 0.0)
    centred = torch.where(complete[..., None], rows - rows.sum(1, keepdim=True) / n_complete[:, None, None], 0.0)
    cov = centred.mT @ centred / (n_complete - 1).clamp(min=1)[:, None, None]
    diff = model.mu.to(feats.device, torch.float64) - mu
    inv = _matlab_pinv((model.cov.to(feats.device, torch.float64) + cov) / 2)
    return torch.sqrt(((diff[:, None, :] @ inv) @ diff[..., None]).reshape(n_images))

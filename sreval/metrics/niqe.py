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

The per-pixel and per-block work runs on the CPU whatever the input's device, then the result goes back to the
input's device: MSCN and the half-scale imresize in `niqe_kernels` (numpy), the AGGD fits in `niqe_blocks`. Where
numba imports, `niqe_jit` compiles the per-pixel kernels and the blocks' moments, one call per plane each instead
of hundreds of numpy calls, with the same bits (`kernels` chooses; `tests/test_niqe_jit.py` compares).

Degenerate inputs are refused rather than scored: an image smaller than one block, a single block (MATLAB's
`nanmean`/`nancov` then treat the 36 features as one vector and return a meaningless number), and an image whose
every block has an undefined feature (a flat image; MATLAB's `pinv` fails on the all-NaN covariance).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.io
import torch

from sreval.errors import ParameterError, SrevalError
from sreval.metrics import niqe_kernels
from sreval.metrics.niqe_blocks import FEATURES_PER_SCALE, block_features

N_FEATURES = 2 * FEATURES_PER_SCALE

Kernel = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Kernels:
    """The kernels NIQE runs per plane: `name` is "numba" (compiled, `niqe_jit`) or "numpy" (`niqe_kernels` and
    `niqe_blocks`)."""

    name: str
    mscn_integer: Kernel
    mscn_float: Kernel
    imresize_half: Kernel
    block_features: Callable[[np.ndarray, int], np.ndarray]


NUMPY_KERNELS = Kernels(
    "numpy", niqe_kernels.mscn_integer, niqe_kernels.mscn_float, niqe_kernels.imresize_half, block_features
)


@functools.cache
def kernels() -> Kernels:
    """The one place that chooses: the compiled kernels where numba imports, else the numpy ones. Both give the
    same bits (`tests/test_niqe_jit.py`); numba is imported on the first NIQE call, not with this module."""
    try:
        from sreval.metrics import niqe_jit
    except ImportError:  # no numba (the GPU machine's Python), or one that does not load with this numpy
        return NUMPY_KERNELS
    return Kernels("numba", niqe_jit.mscn_integer, niqe_jit.mscn_float, niqe_jit.imresize_half, niqe_jit.block_features)


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


def _uint8_valued(x: torch.Tensor | np.ndarray) -> bool:
    """Every value an integer in 0..255. The first row settles most real-valued planes (the half-scale one) at
    once; otherwise one cast to int16, one comparison and the range of the (4× smaller) int16 copy: a value out
    of int16's range, NaN or ±inf casts to some other number and fails the comparison."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.size == 0:
        return False
    with np.errstate(invalid="ignore"):
        head = a[(0,) * (a.ndim - 1)][:64]
        if not np.array_equal(head.astype(np.int16), head):
            return False
        small = a.astype(np.int16)
    return bool(np.array_equal(small, a) and small.min() >= 0 and small.max() <= 255)


def _mscn(x: torch.Tensor) -> torch.Tensor:
    """(im − mu) / (sigma + 1) of (N, 1, H, W) with mu, sigma from the 7×7 window, 'replicate' border.

    mu − im = Σ w·(x − im) and sigma² = Σ w·(x − im)² − (mu − im)², identical to MATLAB's imfilter(im) and
    imfilter(im.^2) − mu² in exact arithmetic. Deviations are summed per mirror pair and then per ring of equal
    weight before weighting, so windows whose weighted deviations cancel give exactly 0 (module docstring):
    always for flat and mirror-symmetric windows (ramps), and for any cancellation on an integer plane.

    Computed on the CPU whatever the tensor's device (the `kernels`): a 0..255 integer plane (the first scale)
    takes exact integer ring sums, any other plane deviations per mirror pair; only elementwise IEEE operations
    in a fixed order, so both give the same bits on the same integers. The result is on x's device.
    """
    planes = x.detach().to("cpu", torch.float64).numpy()[:, 0]
    chosen = kernels()
    out = [chosen.mscn_integer(p) if _uint8_valued(p) else chosen.mscn_float(p) for p in planes]
    stacked = out[0][None] if len(out) == 1 else np.stack(out)
    return torch.from_numpy(stacked[:, None]).to(x.device)


def _check_block(block: int) -> None:
    if isinstance(block, bool) or not isinstance(block, int) or block < 2 or block % 2:
        raise ParameterError(
            "block", f"block (the NIQE block size) must be an even integer >= 2 (scale 2 uses block/2), got {block!r}"
        )


def _batch_features(x: torch.Tensor, block: int) -> torch.Tensor:
    """(N, 1, H, W) real → (N, n_blocks, 36) float64 on x's device: `computequality` up to `distparam`."""
    _check_block(block)
    if x.dim() != 4 or x.shape[1] != 1:
        raise SrevalError(f"NIQE expects one plane per image, shape (N, 1, H, W), got {tuple(x.shape)}")
    if x.is_complex() or x.dtype == torch.bool:
        raise SrevalError(f"NIQE expects a real-valued plane on the 0..255 scale, got {x.dtype}")
    h, w = x.shape[-2:]
    if h < block or w < block:
        raise SrevalError(f"NIQE needs an image of at least {block}x{block} pixels (one block), got {h}x{w}")
    planes = x.detach().to("cpu", torch.float64)[..., : h // block * block, : w // block * block]
    if not np.isfinite(planes.numpy()).all():
        raise SrevalError("NIQE: the plane contains NaN or Inf")
    chosen = kernels()
    half = torch.from_numpy(np.stack([chosen.imresize_half(p) for p in planes.numpy()[:, 0]])[:, None])
    scale1, scale2 = (_mscn(p).cpu().numpy()[:, 0] for p in (planes, half))
    feats = [
        np.concatenate([chosen.block_features(s1, block), chosen.block_features(s2, block // 2)], axis=-1)
        for s1, s2 in zip(scale1, scale2, strict=True)
    ]
    return torch.from_numpy(np.stack(feats)).to(x.device)


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


def _matlab_pinv(a: np.ndarray) -> np.ndarray:
    """MATLAB `pinv` of (..., n, n): drop singular values <= max(size) · eps(largest singular value)."""
    u, s, vh = np.linalg.svd(a)
    largest = s[..., :1]
    tol = max(a.shape[-2:]) * (np.nextafter(largest, np.inf) - largest)
    with np.errstate(divide="ignore"):
        s_inv = np.where(s > tol, 1 / s, 0.0)
    inverse: np.ndarray = (np.swapaxes(vh, -1, -2) * s_inv[..., None, :]) @ np.swapaxes(u, -1, -2)
    return inverse


def niqe(plane: torch.Tensor, model: NiqeModel, block: int = 96) -> torch.Tensor:
    """NIQE of each image of a plane batch (N, 1, H, W) on the 0..255 scale → (N,) float64, lower is better.

    The caller chooses the plane: PIRM 2018 scores MATLAB Y (rgb2ycbcr, uint8) with 4 px shaved; the LIVE
    `computequality` itself turns an RGB image into rgb2gray. Computed on the CPU; the result is on the plane's
    device.
    """
    feats = _batch_features(plane, block).cpu().numpy()
    n_images, n_blocks, _ = feats.shape
    if n_blocks < 2:
        h, w = plane.shape[-2:]
        raise SrevalError(
            f"NIQE needs at least 2 blocks of {block}x{block} pixels, got one from a {h}x{w} image "
            "(MATLAB's nanmean/nancov would treat the one block's 36 features as a single vector)"
        )
    nan = np.isnan(feats)
    # nanmean: per column over the non-NaN entries (an all-NaN column, of a textureless image, is refused below).
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(nan, 0.0, feats).sum(1) / (~nan).sum(1)
    # nancov: rows without any NaN; normalised by n - 1, and a zero matrix for a single complete row.
    complete = ~nan.any(-1)
    n_complete = complete.sum(1)
    if (n_complete == 0).any():
        bad = [i for i, c in enumerate(n_complete.tolist()) if c == 0]
        raise SrevalError(
            f"NIQE is undefined for an image without texture: every {block}x{block} block of image(s) {bad} "
            "of the batch has undefined features (flat areas)"
        )
    rows = np.where(complete[..., None], feats, 0.0)
    centred = np.where(complete[..., None], rows - rows.sum(1, keepdims=True) / n_complete[:, None, None], 0.0)
    cov = np.swapaxes(centred, -1, -2) @ centred / np.maximum(n_complete - 1, 1)[:, None, None]
    diff = model.mu.cpu().numpy() - mu
    inv = _matlab_pinv((model.cov.cpu().numpy() + cov) / 2)
    scores = np.sqrt(((diff[:, None, :] @ inv) @ diff[..., None]).reshape(n_images))
    return torch.from_numpy(scores).to(plane.device)

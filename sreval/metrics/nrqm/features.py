"""The three NRQM feature groups of a luma plane (see the package docstring): local frequency (block DCT
statistics on a Gaussian pyramid), global frequency (GSM-normalised steerable pyramid) and spatial (singular
values of distinct blocks)."""

from __future__ import annotations

import math
from functools import cache, partial

import torch
import torch.nn.functional as F

from sreval.errors import SrevalError
from sreval.metrics.nrqm.gsm import gsm_features
from sreval.metrics.nrqm.parallel import pieces_on_torch_threads
from sreval.metrics.nrqm.stats import F64, coeff_var, gauss_kernel, ggd_shape

#: Lengths of the three feature vectors (local frequency, global frequency, spatial).
FEATURE_SIZES = (18, 45, 75)


# --- pyramid and block DCT (group 1) ----------------------------------------------------------------------


def _gauss_pyramid(x: torch.Tensor, levels: int = 2) -> list[torch.Tensor]:
    """x (H, W) and `levels` halvings: 3×3 Gaussian (σ 0.5), zero border, keep odd rows/columns. Only the kept
    outputs are filtered: a stride-2 filter of the zero-padded level from its second row and column."""
    k = gauss_kernel(3, 0.5)[None, None]
    pyr = [x]
    for _ in range(levels):
        padded = F.pad(x, (1, 1, 1, 1))
        x = F.conv2d(padded[None, None, 1:, 1:], k, stride=2)[0, 0]
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


@cache
def _dct2_matrix(n: int) -> torch.Tensor:
    """The 2-D DCT of row-major flattened n×n blocks as one (n², n²) matrix: vec(C B Cᵀ) = (C ⊗ C) vec(B).
    One product with it does every block at once, where C B Cᵀ would be two tiny products per block."""
    c = _dct_matrix(n)
    return torch.kron(c, c)


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
    diagonal = flat(
        [(1, range(1, 2)), (2, range(2, 4)), (3, range(2, 5)), (4, range(3, 7)), (5, range(4, 7)), (6, range(4, 7))]
    )
    vertical = [(i % 7) * 7 + i // 7 for i in horizontal]  # the transpose of the first group
    return [horizontal, diagonal, vertical]


_ORIENTATIONS = [torch.tensor(idx) for idx in _orientation_index()]


def _mean_lowest(sorted_x: torch.Tensor, frac: float) -> torch.Tensor:
    return sorted_x[: math.ceil(frac * sorted_x.numel()) + 1].mean()


def _mean_highest(sorted_x: torch.Tensor, start: float) -> torch.Tensor:
    return sorted_x[math.floor(start * sorted_x.numel()) :].mean()


def _block_dct_features(level: torch.Tensor) -> torch.Tensor:
    """Six statistics of the 7×7 DCTs of blocks taken every 3 px (zero 'SAME' padding)."""
    (pt, pb), (pl, pr) = _same_pad(level.shape[0], 7, 3), _same_pad(level.shape[1], 7, 3)
    padded = F.pad(level[None, None], (pl, pr, pt, pb))
    blocks = F.unfold(padded, 7, stride=3)[0]  # (49, n): one block per column
    coef = (_dct2_matrix(7) @ blocks).T  # (n, 49): the statistics reduce along rows
    ac = coef[:, 1:]

    shape = torch.sort(ggd_shape(ac)).values
    cv = torch.sort(coeff_var(ac, 1e-7)).values
    per_orientation = torch.stack([coeff_var(coef.index_select(1, idx), 1e-8) for idx in _ORIENTATIONS], dim=-1)
    orient = torch.sort(per_orientation.var(dim=-1)).values
    return torch.stack(
        [
            _mean_lowest(shape, 0.1),
            shape.mean(),
            _mean_highest(cv, 0.9),
            cv.mean(),
            _mean_highest(orient, 0.9),
            orient.mean(),
        ]
    )


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
    local frequency (18), global frequency (45), spatial (75), in pyiqa's order.

    Computed on the CPU (a plane elsewhere is copied there): independent pieces of the work run side by side
    on torch's CPU threads (`parallel`), with the same result on any number of threads."""
    if plane.dim() != 2:
        raise SrevalError(f"NRQM takes one luma plane (H, W), got shape {tuple(plane.shape)}")
    if min(plane.shape) < 64:
        raise SrevalError(f"NRQM needs a plane of at least 64×64 pixels, got {tuple(plane.shape)}")
    img = plane.detach().to("cpu", F64)
    with pieces_on_torch_threads() as pieces:
        # Groups 1 and 3 need nothing of group 2: one piece, started first, that fills the gaps between the
        # stages of group 2.
        local_and_spatial = pieces.submit(partial(_local_and_spatial, img))
        f2 = gsm_features(img, pieces)
        f1, f3 = local_and_spatial.result()
    return f1, f2, f3


def _local_and_spatial(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Groups 1 and 3 of a plane (values 0..255): both work on the same Gaussian pyramid of plane / 255."""
    pyr = _gauss_pyramid(img / 255.0)
    local = torch.cat([_block_dct_features(level) for level in pyr])
    spatial = torch.cat([_block_singular_values(level) for level in pyr])
    return local, spatial

"""TensorFlow 1's bicubic resize, as `tf.image.resize_images(..., method=BICUBIC)` behaved with its defaults of
the time (before `half_pixel_centers` existed), for the official EnhanceNet pipeline.

It differs from MATLAB's and torch's bicubic: Keys cubic with a = −0.75 whose weights are read from a 1024-entry
table, source coordinate = output coordinate / scale (no half-pixel centres, so the result is shifted by
(scale − 1) / 2 output pixels relative to a centred resize), border indices clamped, no antialiasing; rows
first, then columns, in float32. Checked against TensorFlow in tests/test_enhancenet_official.py.
"""

from __future__ import annotations

import torch

from sreval.errors import ParameterError

_TF1_TABLE_SIZE = 1024
_TF1_CUBIC_A = -0.75


def _tf1_coefficient_table() -> torch.Tensor:
    """TF1's table of cubic weights: row i holds (k(x), k(x + 1)) for x = i / 1024, computed in float32."""
    x = (torch.arange(_TF1_TABLE_SIZE + 1, dtype=torch.float64) / _TF1_TABLE_SIZE).to(torch.float32)
    a = torch.tensor(_TF1_CUBIC_A, dtype=torch.float32)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    x1 = x + 1
    far = ((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a
    return torch.stack([near, far], dim=1)


def _tf1_taps(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices (out, 4) and weights (out, 4) of TF1's legacy bicubic resize along one axis."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    src = torch.arange(out_size, dtype=torch.float32) * scale
    base = torch.floor(src)
    offset = torch.round((src - base) * _TF1_TABLE_SIZE).long()  # lrintf; deltas here are exact table points
    table = _tf1_coefficient_table()
    weights = torch.stack(
        [table[offset, 1], table[offset, 0], table[_TF1_TABLE_SIZE - offset, 0], table[_TF1_TABLE_SIZE - offset, 1]],
        dim=1,
    )
    idx = (base.long().unsqueeze(1) + torch.arange(-1, 3).unsqueeze(0)).clamp(0, in_size - 1)
    return idx.to(device), weights.to(device)


def _resize_axis(x: torch.Tensor, out_size: int, dim: int) -> torch.Tensor:
    idx, w = _tf1_taps(x.shape[dim], out_size, x.device)
    shape = [1] * x.ndim
    shape[dim] = out_size
    out = torch.zeros((), dtype=x.dtype, device=x.device)
    for k in range(4):  # summed tap by tap, in TF's order
        out = out + x.index_select(dim, idx[:, k]) * w[:, k].to(x.dtype).view(shape)
    return out


def tf1_resize_bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """TensorFlow 1 `resize_bicubic` (align_corners=False, legacy coordinates) of (N, C, H, W) by `scale`,
    in float32 (the dtype TF computes it in)."""
    if x.ndim != 4:
        raise ParameterError("x", f"tf1_resize_bicubic expects (N, C, H, W), got shape {tuple(x.shape)}")
    x = x.to(torch.float32)
    rows = _resize_axis(x, x.shape[2] * scale, dim=2)
    return _resize_axis(rows, x.shape[3] * scale, dim=3)

"""Small MATLAB semantics that several modules must share exactly: round() and im2uint8."""

from __future__ import annotations

import torch


def matlab_round(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's round() (half away from zero) for the non-negative values that matter here; torch.round rounds
    half to even. Written as floor + comparison so that x.5 − 1 ulp is not pushed up by the addition of 0.5."""
    floor = torch.floor(x)
    return torch.where(x - floor >= 0.5, floor + 1, floor)


def quantise_im2uint8(y: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] (unclamped) → uint8 as MATLAB's im2uint8: clamp, ×255, round half away from zero."""
    return matlab_round(y.to(torch.float32).clamp(0, 1) * 255).to(torch.uint8)

"""Small MATLAB semantics that several modules must share exactly."""

from __future__ import annotations

import torch


def matlab_round(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's round() (half away from zero) for the non-negative values that matter here; torch.round rounds
    half to even. Written as floor + comparison so that x.5 − 1 ulp is not pushed up by the addition of 0.5."""
    floor = torch.floor(x)
    return torch.where(x - floor >= 0.5, floor + 1, floor)

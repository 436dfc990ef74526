"""Small MATLAB semantics that several modules must share exactly: round() and im2uint8."""

from __future__ import annotations

import torch

#: The largest double below ½ (½ − 2⁻⁵⁴).
_BELOW_HALF = 0.49999999999999994


def matlab_round(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's round() (half away from zero) for the non-negative values that matter here; torch.round rounds
    half to even. Written as floor + comparison so that x.5 − 1 ulp is not pushed up by the addition of 0.5."""
    floor = torch.floor(x)
    return torch.where(x - floor >= 0.5, floor + 1, floor)


def round_clamp_uint8_range_(x: torch.Tensor) -> torch.Tensor:
    """`matlab_round(x).clamp_(0, 255)` computed in place in x (returned): three passes over x instead of six,
    for the roundings of imresize's uint8 path. Same values for every float64 x (a zero's sign aside).

    In float64 it is floor(x + (½ − 2⁻⁵⁴)). For x ≥ 0 with fraction f: if f ≥ ½ the sum reaches the next integer
    (when f = ½ exactly it lies 2⁻⁵⁴ below it, and the doubles below an integer ≥ 1 are at least 2⁻⁵³ apart, at 1
    a tie that goes to the even 1.0); if f < ½ then f ≤ ½ − ulp(x), so the sum rounds at most to the double just
    under the next integer. Adding ½ itself would push ½ − 1 ulp up to 1. A negative x gives ≤ 0 both ways, then
    0 after the clamp. Other dtypes take matlab_round (the constant is for float64's precision).
    """
    if x.dtype != torch.float64:
        return x.copy_(matlab_round(x).clamp_(0, 255))
    return x.add_(_BELOW_HALF).floor_().clamp_(0, 255)


def quantise_im2uint8(y: torch.Tensor) -> torch.Tensor:
    """Float image in [0, 1] (unclamped) → uint8 as MATLAB's im2uint8: clamp, ×255, round half away from zero."""
    return matlab_round(y.to(torch.float32).clamp(0, 1) * 255).to(torch.uint8)

"""Small helpers shared by the architecture families."""

from __future__ import annotations

import math

from sreval.errors import ParameterError


def num_x2_stages(scale: int, allowed: tuple[int, ...] = (2, 4, 8)) -> int:
    """Number of ×2 upsampling stages for `scale`; generators here upsample by repeated ×2 steps."""
    if scale not in allowed:
        raise ParameterError("scale", f"scale {scale} is not supported; allowed: {', '.join(map(str, allowed))}")
    return int(math.log2(scale))

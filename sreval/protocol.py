"""The evaluation protocol parameters: everything that changes a number, in one validated, hashable object."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from sreval import PROTOCOL_VERSION
from sreval.errors import ParameterError
from sreval.matlab.color import Y_MODES, YMode
from sreval.matlab.imresize import VARIANTS, Variant


@dataclass(frozen=True)
class Protocol:
    """Defaults are the published ×4 protocol: MATLAB uint8 bicubic LR, MATLAB uint8 Y, shave = scale."""

    scale: int = 4
    degradation: Variant = "uint8"
    y_mode: YMode = "matlab"
    shave: int | None = None  # None: shave `scale` pixels, as the published tables do

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4, 8):
            raise ParameterError("scale", f"scale must be one of 2, 3, 4, 8, got {self.scale}")
        if self.degradation not in VARIANTS:
            raise ParameterError(
                "degradation", f"unknown degradation {self.degradation!r}; allowed: {', '.join(VARIANTS)}"
            )
        if self.y_mode not in Y_MODES:
            raise ParameterError("y_mode", f"unknown y_mode {self.y_mode!r}; allowed: {', '.join(Y_MODES)}")
        if self.shave is not None and self.shave < 0:
            raise ParameterError("shave", f"shave must be >= 0, got {self.shave}")

    @property
    def border(self) -> int:
        """Pixels removed from each border before scoring."""
        return self.scale if self.shave is None else self.shave

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shave": self.border, "protocol_version": PROTOCOL_VERSION}

    def key(self) -> str:
        """Short stable hash of the parameters, for cache keys."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]

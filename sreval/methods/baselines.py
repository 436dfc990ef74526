"""The baselines: `nn` (pixel replication), `bicubic` (MATLAB imresize) and `hr` (the reference image itself,
as SRGAN's MOS table rates it; scored against itself it gives each metric's value for a perfect output)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sreval.imageio import from_tensor
from sreval.matlab.imresize import imresize
from sreval.methods.base import Method, MethodInput

#: Name of the reference "method": the HR image itself.
HR_METHOD = "hr"


class NearestNeighbour(Method):
    name = "nn"
    cache_output = False  # pixel replication: far cheaper than a PNG round trip

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "upsampling": "pixel replication (MATLAB imresize 'nearest')"}

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        s = item.protocol.scale
        return from_tensor(item.lr.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3))


class Bicubic(Method):
    name = "bicubic"
    cache_output = False  # two separable passes: cheaper than encoding and decoding the PNG (perf/main_job.py)

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "upsampling": "MATLAB imresize bicubic, uint8 (rounded after each pass)"}

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        return from_tensor(imresize(item.lr, float(item.protocol.scale), variant="uint8"))


class Reference(Method):
    """The HR image as an output (`hr`): nothing to compute, so nothing to cache."""

    name = HR_METHOD
    computes_output = False

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "output": "the mod-cropped HR reference image"}

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        return item.hr.pixels

"""pyiqa's metrics (IQA-PyTorch) under sreval's protocol: `pyiqa:NAME` for any per-image metric pyiqa knows.

sreval shaves the protocol's border from the output (and, for a full-reference metric, from the HR), turns the
uint8 pixels into the float32 RGB tensor in [0, 1] that pyiqa makes of an image file, and calls pyiqa's metric
with its default settings: the number is pyiqa's, on the pixels sreval's native metrics score. A no-reference
metric sees only the output. A 1-channel image is given as three equal channels, since pyiqa's networks take RGB.

pyiqa is optional (the `pyiqa` extra, then pyiqa itself with --no-deps: see INSTALL) and imported only when a
`pyiqa:` metric is asked for. Its licence (PolyForm Noncommercial, parts under the S-Lab licence) allows
non-commercial use only. Its models download their weights on first use into torch hub's folder
(`$TORCH_HOME/hub/pyiqa`, and `hub/checkpoints` for torchvision backbones); sreval's offline switch and asset
folders do not apply to them.

This module does not know the registry (the registry builds its metric classes from `PyiqaSpec`), so that the
two do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

from sreval.errors import ParameterError, SrevalError

PREFIX = "pyiqa:"
INSTALL = (
    "pyiqa is not installed; install the pyiqa extra and pyiqa itself: pip install 'sreval[pyiqa]' && "
    "pip install --no-deps pyiqa==0.1.16 (with torch and torchvision installed first as a matching pair; "
    "--no-deps because pyiqa's own requirements pull GBs of packages its metrics do not import)"
)
LICENCE_NOTE = "pyiqa: non-commercial use only; a model with weights downloads them on first use"


@dataclass(frozen=True)
class PyiqaSpec:
    """One pyiqa metric as pyiqa's configuration table describes it."""

    name: str  # pyiqa's name, without the prefix
    version: str  # pyiqa's version: part of the cache key, so values from another release are not reused
    lower_better: bool
    full_reference: bool


def is_pyiqa_name(name: str) -> bool:
    return name.strip().lower().startswith(PREFIX)


def import_pyiqa() -> ModuleType:
    """The pyiqa package, or one error saying how to install it."""
    try:
        import pyiqa
    except ImportError as error:
        raise SrevalError(INSTALL) from error
    module: ModuleType = pyiqa  # untyped package
    return module


def _is_set_level(name: str) -> bool:
    """FID and the inception score compare image sets (pyiqa calls them on folders), not one output."""
    return "fid" in name or name == "inception_score"


def pyiqa_spec(full_name: str) -> PyiqaSpec:
    """The spec of `pyiqa:NAME`; an unknown NAME lists the names pyiqa knows."""
    pyiqa = import_pyiqa()
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    name = full_name.strip().lower().removeprefix(PREFIX).strip()
    per_image = [n for n in pyiqa.list_models() if not _is_set_level(n)]
    if name not in DEFAULT_CONFIGS:
        raise ParameterError("name", f"unknown pyiqa metric {name!r}; pyiqa {pyiqa.__version__} has: "
                                     f"{', '.join(per_image)}")  # fmt: skip
    if _is_set_level(name):
        raise ParameterError("name", f"pyiqa's {name!r} scores a set of images, not one output; per-image "
                                     f"pyiqa metrics: {', '.join(per_image)}")  # fmt: skip
    config: dict[str, Any] = DEFAULT_CONFIGS[name]
    # InferenceModel's own defaults: lower_better False unless set; the mode is "FR" or "NR".
    return PyiqaSpec(name, str(pyiqa.__version__), bool(config.get("lower_better", False)),
                     config.get("metric_mode") == "FR")  # fmt: skip


def pyiqa_input(img: torch.Tensor, border: int) -> torch.Tensor:
    """uint8 (N, C, H, W) → float32 RGB (N, 3, H', W') in [0, 1], `border` px shaved from each side."""
    if border:
        img = img[..., border:-border, border:-border]
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    # NCHW memory, as pyiqa's own file reader gives: a float32 sum in another order differs in the last digits.
    return img.contiguous().to(torch.float32) / 255


class PyiqaScorer:
    """One pyiqa metric, made on first use on each device (a cached run never loads its weights)."""

    def __init__(self, spec: PyiqaSpec) -> None:
        self.spec = spec
        self._models: dict[torch.device, Any] = {}

    def _model(self, device: torch.device) -> Any:
        if device not in self._models:
            pyiqa = import_pyiqa()
            try:
                self._models[device] = pyiqa.create_metric(self.spec.name, device=device)
            except Exception as error:  # pyiqa raises what its downloads and model code raise
                raise SrevalError(
                    f"pyiqa could not create {self.spec.name!r} ({type(error).__name__}: {error}); pyiqa models "
                    "download their weights on first use, into torch hub's folder ($TORCH_HOME/hub, default "
                    "~/.cache/torch/hub), and a few need packages beyond the pyiqa extra"
                ) from error
        return self._models[device]

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor | None, border: int) -> torch.Tensor:
        """Scores (N,) float64 of uint8 outputs (and references, for a full-reference metric) (N, C, H, W)."""
        model = self._model(sr.device)
        n = sr.shape[0]
        with torch.no_grad():
            if self.spec.full_reference:
                if hr is None:
                    raise ParameterError("hr", f"pyiqa:{self.spec.name} needs the reference image")
                out = model(pyiqa_input(sr, border), pyiqa_input(hr, border))
            else:
                out = model(pyiqa_input(sr, border))
        return torch.as_tensor(out).detach().reshape(n, -1)[:, 0].to(torch.float64)

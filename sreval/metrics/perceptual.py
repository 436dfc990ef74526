"""No-reference perceptual metrics by the PIRM 2018 protocol: NIQE, Ma's score (NRQM) and PI.

PIRM (`calc_NIQE` / `calc_Ma` of its evaluation code) scores MATLAB `rgb2ycbcr` Y (uint8) of the output with
4 px shaved (the protocol's border); a single-channel image is scored on its own values. NIQE uses the LIVE
pristine model and 96×96 blocks. PI = ½((10 − Ma) + NIQE), lower is better.

This NIQE is the LIVE `computequality` on Y. pyiqa's default `niqe` differs (no shave, its own colour
conversion), and so does MATLAB's built-in `niqe`: numbers from those are not PI components.

The model files come from `sreval.assets`; a missing one makes the metric unavailable (AssetMissing at
creation), never a silent zero. Each metric's cache key carries the model file's checksum, so values made with
one model file are never reused for another.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from sreval.assets import resolve, sha256_of
from sreval.matlab.color import rgb_to_y
from sreval.metrics.niqe import NiqeModel, load_niqe_model, niqe
from sreval.metrics.nrqm import NrqmModel, load_nrqm_model, nrqm_features, nrqm_score
from sreval.metrics.registry import DerivedMetric, Metric, MetricInfo, register_metric
from sreval.protocol import Protocol


def pirm_plane(img: torch.Tensor, protocol: Protocol) -> torch.Tensor:
    """The plane PIRM scores: Y (or the gray values of a 1-channel image), float64, border shaved."""
    plane = img.to(torch.float64) if img.shape[1] == 1 else rgb_to_y(img, protocol.y_mode)
    b = protocol.border
    return plane[..., b:-b, b:-b] if b else plane


class ModelMetric(Metric):
    """A metric that needs a model file (an asset); its cache key includes the file's checksum."""

    asset: ClassVar[str]

    def __init__(self, protocol: Protocol, asset_paths: Mapping[str, Path] | None = None) -> None:
        super().__init__(protocol, asset_paths)
        self.model_path = resolve(self.asset, self.asset_paths.get(self.asset))
        self.model_sha256 = sha256_of(self.model_path)
        self.model = self.load_model(self.model_path)

    @abstractmethod
    def load_model(self, path: Path) -> Any:
        """Read the model file (errors name the file)."""

    @property
    def cache_key(self) -> str:
        return f"{super().cache_key}@{self.asset}:{self.model_sha256[:16]}"


@register_metric
class NIQE(ModelMetric):
    info = MetricInfo(
        "niqe", False, False, "", "NIQE (LIVE model, 96x96 blocks) on Y, border shaved: PIRM 2018", label="NIQE"
    )
    asset = "niqe"

    def load_model(self, path: Path) -> NiqeModel:
        return load_niqe_model(path)

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return niqe(pirm_plane(sr, self.protocol), self.model)


@register_metric
class Ma(ModelMetric):
    info = MetricInfo("ma", True, False, "", "Ma et al.'s NRQM score (0-10) on Y, border shaved: PIRM 2018", label="Ma")
    asset = "nrqm"

    def load_model(self, path: Path) -> NrqmModel:
        return load_nrqm_model(path)

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        planes = pirm_plane(sr, self.protocol)
        scores = [nrqm_score(nrqm_features(plane[0]), self.model) for plane in planes]
        return torch.stack([s.reshape(()) for s in scores]).to(torch.float64)


@register_metric
class PI(DerivedMetric):
    info = MetricInfo("pi", False, False, "", "Perceptual index ((10 - Ma) + NIQE) / 2: PIRM 2018", label="PI")
    parts = ("ma", "niqe")

    def combine(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((10 - parts["ma"]) + parts["niqe"]) / 2

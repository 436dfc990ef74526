"""No-reference perceptual metrics by the PIRM 2018 protocol: NIQE, Ma's score (NRQM) and PI.

PIRM (`calc_NIQE` / `calc_Ma` of its evaluation code) scores MATLAB `rgb2ycbcr` Y (uint8) of the output with
4 px shaved (the protocol's border); a single-channel image is scored on its own values. NIQE uses the LIVE
pristine model and 96×96 blocks. PI = ½((10 − Ma) + NIQE), lower is better.

This NIQE is the LIVE `computequality` on Y. pyiqa's default `niqe` differs (no shave, its own colour
conversion), and so does MATLAB's built-in `niqe`: numbers from those are not PI components.

NIQE's pristine model ships with sreval (`metrics/data/niqe_pristine.json`, the LIVE numbers bit for bit), so
NIQE needs no file and works offline; a `niqe` asset (the LIVE .mat, BasicSR's .npz, a .json table) given with
`--asset niqe=PATH` or found in the asset folders takes its place. Ma's model is not shipped: it comes from
`sreval.assets` as pyiqa's `NRQM_model.mat` (asset `nrqm`) or the authors' `model.mat` (asset `nrqm-original`);
with neither, Ma and PI are unavailable (AssetMissing at creation), never a silent zero. Each metric's cache key
carries the identity of its model (NIQE: a digest of the parameters, whichever file held them; Ma: the file's
SHA-256), so values made with one model are never reused for another.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch

from sreval.assets import AssetMissing, locate, resolve, sha256_of
from sreval.metrics.niqe import NiqeModel, load_niqe_model, niqe, shipped_niqe_model
from sreval.metrics.nrqm import NrqmModel, load_nrqm_model, nrqm_features, nrqm_score
from sreval.metrics.registry import (
    DerivedMetric,
    Metric,
    MetricInfo,
    OwnPlaneMetric,
    own_plane,
    register_metric,
    shaved,
)
from sreval.protocol import Protocol


def pirm_plane(img: torch.Tensor, protocol: Protocol) -> torch.Tensor:
    """The plane PIRM scores: Y (or the gray values of a 1-channel image), float64, border shaved."""
    return shaved(own_plane(img, protocol.y_mode), protocol.border)


#: Ma's model files, in the order they are looked for.
NRQM_ASSETS = ("nrqm", "nrqm-original")


#: What a benchmark run scores when not told otherwise: the perception–distortion plane's axes (RMSE, and NIQE
#: or PI) next to the published tables' PSNR/SSIM.
PLANE_METRICS = ("psnr", "ssim", "rmse", "niqe")


def default_metrics(asset_paths: Mapping[str, Path] | None = None) -> list[str]:
    """`PLANE_METRICS`, plus Ma and PI when Ma's model is named in `asset_paths` or already on this machine.

    Only looked for, never downloaded: a default must not start a download the user did not ask for."""
    named = any(name in (asset_paths or {}) for name in NRQM_ASSETS)
    present = named or any(_installed(name) for name in NRQM_ASSETS)
    return [*PLANE_METRICS, *(("ma", "pi") if present else ())]


def _installed(name: str) -> bool:
    try:
        locate(name)
    except AssetMissing:
        return False
    return True


class ModelMetric(Metric):
    """A metric that needs model parameters; its cache key includes their identity."""

    asset: ClassVar[str]

    def __init__(self, protocol: Protocol, asset_paths: Mapping[str, Path] | None = None) -> None:
        super().__init__(protocol, asset_paths)
        self.model_path = self.locate()
        self.model = self.load_model(self.model_path)

    @abstractmethod
    def locate(self) -> Path | None:
        """The model file to use (None: the model that ships with sreval), or AssetMissing."""

    @abstractmethod
    def load_model(self, path: Path | None) -> Any:
        """Read the model file (errors name the file)."""

    @abstractmethod
    def model_digest(self) -> str:
        """A hex digest that changes whenever the model's numbers may change."""

    @property
    def cache_key(self) -> str:
        return f"{super().cache_key}@{self.asset}:{self.model_digest()[:16]}"


@register_metric
class NIQE(ModelMetric, OwnPlaneMetric):
    info = MetricInfo(
        "niqe", False, False, "", "NIQE (LIVE model, 96x96 blocks) on Y, border shaved: PIRM 2018", label="NIQE"
    )
    asset = "niqe"

    def locate(self) -> Path | None:
        explicit = self.asset_paths.get(self.asset)
        if explicit is not None:
            # A file the user names is used as given (another pristine model is a deliberate choice, and the
            # cache key follows its numbers); a missing one is an error, never replaced by the shipped model.
            path = Path(explicit).expanduser()
            if not path.is_file():
                raise AssetMissing(f"{path} (given for asset {self.asset}) does not exist")
            return path
        try:
            return locate(self.asset)  # the LIVE file where the user keeps assets (verified); never downloaded
        except AssetMissing:
            return None

    def load_model(self, path: Path | None) -> NiqeModel:
        return shipped_niqe_model() if path is None else load_niqe_model(path)

    def model_digest(self) -> str:
        # The numbers, not the file: the LIVE .mat, BasicSR's .npz and the shipped table share cached values.
        digest: str = self.model.digest()
        return digest

    def on_plane(self, plane: torch.Tensor) -> torch.Tensor:
        return niqe(plane, self.model)


@register_metric
class Ma(ModelMetric, OwnPlaneMetric):
    info = MetricInfo("ma", True, False, "", "Ma et al.'s NRQM score (0-10) on Y, border shaved: PIRM 2018", label="Ma")
    asset = "nrqm"

    def locate(self) -> Path:
        for name in NRQM_ASSETS:  # a file named on the command line comes first
            if name in self.asset_paths:
                return resolve(name, self.asset_paths[name])
        reasons = []
        for name in NRQM_ASSETS:  # either file already on this machine, before any download
            try:
                return locate(name)
            except AssetMissing as missing:
                reasons.append(str(missing))
        try:
            return resolve(NRQM_ASSETS[-1])  # the authors' file is pinned, so it may be downloaded on first use
        except AssetMissing as missing:
            reasons[-1] = str(missing)
        raise AssetMissing(" Or the authors' file: ".join(reasons))

    def load_model(self, path: Path | None) -> NrqmModel:
        assert path is not None  # locate never returns None for Ma
        return load_nrqm_model(path)

    def model_digest(self) -> str:
        assert self.model_path is not None
        return sha256_of(self.model_path)

    def on_plane(self, plane: torch.Tensor) -> torch.Tensor:
        scores = [nrqm_score(nrqm_features(one[0]), self.model) for one in plane]
        return torch.stack([s.reshape(()) for s in scores]).to(torch.float64)


@register_metric
class PI(DerivedMetric):
    info = MetricInfo("pi", False, False, "", "Perceptual index ((10 - Ma) + NIQE) / 2: PIRM 2018", label="PI")
    parts = ("ma", "niqe")

    def combine(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return ((10 - parts["ma"]) + parts["niqe"]) / 2

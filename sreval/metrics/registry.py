"""Metric registry: `create_metric(name, protocol)` and the metadata every metric carries.

A metric is a thin class over a pure function in `sreval.metrics.functional`: it takes uint8 images
(N, C, H, W) as they are stored, applies the protocol (luma plane, shave) and returns one float64 per image.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

import torch

from sreval.assets import AssetMissing
from sreval.errors import ParameterError
from sreval.matlab.color import YMode, luma_pair, rgb_to_y
from sreval.metrics import functional
from sreval.metrics.functional import SSIM_SIGMA, SSIM_WINDOW
from sreval.metrics.pyiqa_metrics import LICENCE_NOTE, PyiqaScorer, PyiqaSpec, is_pyiqa_name, pyiqa_spec
from sreval.protocol import Protocol

Aggregate = Literal["mean", "rms"]


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is and how it is shown; tables, plots and the CLI take names, units and places from here."""

    name: str
    higher_is_better: bool
    needs_reference: bool
    unit: str
    description: str
    #: How per-image values become a set value: "mean", or "rms" = sqrt(mean(value²)) — RMSE over a set is
    #: sqrt(mean per-image MSE) in the PIRM protocol, not the mean of per-image RMSEs.
    aggregate: Aggregate = "mean"
    #: The metric's name in tables, legends and axes ("PSNR", "Ma"); `name` is the key it is stored under.
    label: str = ""
    #: Decimal places of a value in a summary printed for the user.
    decimals: int = 4
    #: Decimal places in a results table laid out like the published ones (SRGAN's Table 2: PSNR 2, SSIM 4).
    table_decimals: int = 2

    @property
    def label_with_unit(self) -> str:
        """ "PSNR (dB)", or the label alone for a unitless metric."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    @property
    def better(self) -> str:
        """Which direction is better, as an axis or a table says it."""
        return "higher is better" if self.higher_is_better else "lower is better"


class Metric(ABC):
    info: ClassVar[MetricInfo]

    def __init__(self, protocol: Protocol, asset_paths: Mapping[str, Path] | None = None) -> None:
        self.protocol = protocol
        #: Explicit model files by asset name (`--asset NAME=PATH`), tried before the usual locations.
        self.asset_paths = dict(asset_paths or {})

    @abstractmethod
    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Scores (N,) float64 for uint8 outputs and references (N, C, H, W)."""

    @property
    def cache_key(self) -> str:
        """Identifies this metric's numbers: its name and every protocol parameter."""
        return f"{self.info.name}@{self.protocol.key()}"


_REGISTRY: dict[str, type[Metric]] = {}
M = TypeVar("M", bound=type[Metric])


def register_metric(cls: M) -> M:
    _REGISTRY[cls.info.name] = cls
    return cls


def metric_names() -> list[str]:
    return list(_REGISTRY)


def _metric_class(name: str) -> type[Metric]:
    if is_pyiqa_name(name):
        return _pyiqa_class(pyiqa_spec(name))
    try:
        return _REGISTRY[name.strip().lower()]
    except KeyError:
        raise ParameterError("name", f"unknown metric {name!r}; available: {', '.join(_REGISTRY)}") from None


def metric_info(name: str) -> MetricInfo:
    """The `MetricInfo` of a registered metric, without creating it (no model file needed)."""
    return _metric_class(name).info


def create_metric(name: str, protocol: Protocol | None = None, asset_paths: Mapping[str, Path] | None = None) -> Metric:
    return _metric_class(name)(protocol or Protocol(), asset_paths)


def _names(names: Sequence[str]) -> list[str]:
    """The registry names of `names` (case and surrounding blanks ignored), each once, in order."""
    if isinstance(names, str):
        raise ParameterError("names", f"names must be a sequence of metric names, not the string {names!r}")
    wanted = [n.strip().lower() for n in names]
    if not wanted or "" in wanted:
        available = ", ".join(_REGISTRY)
        raise ParameterError("names", f"names must name metrics, got {list(names)!r}; available: {available}")
    unknown = [n for n in wanted if n not in _REGISTRY and not is_pyiqa_name(n)]
    if unknown:
        available = ", ".join([*_REGISTRY, "pyiqa:NAME"])
        raise ParameterError("names", f"unknown metric {unknown[0]!r}; available: {available}")
    for name in wanted:
        if is_pyiqa_name(name):
            pyiqa_spec(name)  # an unknown pyiqa name or a missing pyiqa, before anything runs
    return list(dict.fromkeys(wanted))


def parse_metrics(
    names: Sequence[str], protocol: Protocol, asset_paths: Mapping[str, Path] | None = None
) -> list[Metric]:
    """All named metrics, or an error (including a missing model file) for the first that cannot be made."""
    return [create_metric(n, protocol, asset_paths) for n in _names(names)]


def select_metrics(
    names: Sequence[str], protocol: Protocol, asset_paths: Mapping[str, Path] | None = None
) -> tuple[list[Metric], dict[str, str]]:
    """The named metrics that can run, and for the others (missing model files) the reason, by name.

    A run goes on with what is available and reports the rest as unavailable: never a zero or NaN in a table.
    """
    available: list[Metric] = []
    unavailable: dict[str, str] = {}
    for name in _names(names):
        try:
            available.append(create_metric(name, protocol, asset_paths))
        except AssetMissing as missing:
            unavailable[name] = str(missing)
    return available, unavailable


class PyiqaMetric(Metric):
    """A pyiqa metric on the protocol's shaved output (and HR, if it needs one); see `pyiqa_metrics`."""

    spec: ClassVar[PyiqaSpec]

    def __init__(self, protocol: Protocol, asset_paths: Mapping[str, Path] | None = None) -> None:
        super().__init__(protocol, asset_paths)
        self.scorer = PyiqaScorer(self.spec)

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.scorer(sr, hr if self.spec.full_reference else None, self.protocol.border)

    @property
    def cache_key(self) -> str:
        return f"{super().cache_key}@pyiqa-{self.spec.version}"


_PYIQA_CLASSES: dict[PyiqaSpec, type[Metric]] = {}


def _pyiqa_class(spec: PyiqaSpec) -> type[Metric]:
    """The metric class of one pyiqa metric, made on first request (pyiqa's list is pyiqa's, not ours)."""
    if spec not in _PYIQA_CLASSES:
        kind = "full-reference" if spec.full_reference else "no-reference"
        info = MetricInfo(
            f"pyiqa:{spec.name}", not spec.lower_better, spec.full_reference, "",
            f"pyiqa {spec.version} {spec.name!r} ({kind}, pyiqa's defaults), border shaved ({LICENCE_NOTE})",
            label=f"{spec.name} (pyiqa)",
        )  # fmt: skip
        _PYIQA_CLASSES[spec] = type(f"Pyiqa_{spec.name}", (PyiqaMetric,), {"info": info, "spec": spec})
    return _PYIQA_CLASSES[spec]


class LumaMetric(Metric):
    """A full-reference metric computed on the luma planes chosen by `luma_pair` (Y, or gray values)."""

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.on_planes(*luma_pair(sr, hr, self.protocol.y_mode))

    @abstractmethod
    def on_planes(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Scores (N,) for float64 planes (N, 1, H, W) on the 0..255 scale."""

    def on_planes_sharing_reference(
        self, sr: torch.Tensor, hr: torch.Tensor, reference: dict[object, torch.Tensor]
    ) -> torch.Tensor:
        """`on_planes`, where `hr` is the plane of this metric's Y mode in `reference`, the dict a caller keeps
        for one reference image (see `score_all`): the metric may keep there what depends on `hr` alone, for the
        next output scored against it, under a key of its own. The values are those of `on_planes`."""
        return self.on_planes(sr, hr)


class MseMetric(LumaMetric):
    """A luma metric computed from the planes' MSE alone, so that `score_all` computes the MSE once for all."""

    def on_planes(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.from_mse(functional.mse(sr, hr, shave=self.protocol.border))

    @abstractmethod
    def from_mse(self, mse: torch.Tensor) -> torch.Tensor:
        """Scores (N,) from the per-image MSE of the shaved planes."""


def own_plane(img: torch.Tensor, mode: YMode) -> torch.Tensor:
    """An image's own luma plane, float64 (N, 1, H, W): Y of RGB, or the gray values as they are. It is the plane
    `luma_pair` compares when output and reference have the same number of channels."""
    return img.to(torch.float64) if img.shape[1] == 1 else rgb_to_y(img, mode)


def shaved(plane: torch.Tensor, border: int) -> torch.Tensor:
    """`plane` without `border` pixels on each side (a view)."""
    return plane[..., border:-border, border:-border] if border else plane


class OwnPlaneMetric(Metric):
    """A no-reference metric of the output's own luma plane with the border shaved (PIRM's NIQE and Ma);
    `score_all` hands it the plane it made for the luma metrics instead of converting the output again."""

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.on_plane(shaved(own_plane(sr, self.protocol.y_mode), self.protocol.border))

    @abstractmethod
    def on_plane(self, plane: torch.Tensor) -> torch.Tensor:
        """Scores (N,) for the output's shaved float64 plane (N, 1, H, W) on the 0..255 scale."""


class DerivedMetric(Metric):
    """A metric combined from other registered metrics (PI from Ma and NIQE); unavailable when a part is."""

    parts: ClassVar[tuple[str, ...]]

    def __init__(self, protocol: Protocol, asset_paths: Mapping[str, Path] | None = None) -> None:
        super().__init__(protocol, asset_paths)
        self.components = [create_metric(name, protocol, asset_paths) for name in self.parts]

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.combine({m.info.name: m(sr, hr) for m in self.components})

    @abstractmethod
    def combine(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The metric from its parts' scores, by name."""

    @property
    def cache_key(self) -> str:
        return f"{self.info.name}({','.join(m.cache_key for m in self.components)})"


def score_all(
    metrics: Sequence[Metric],
    sr: torch.Tensor,
    hr: torch.Tensor,
    *,
    timings: MutableMapping[str, float] | None = None,
    reference_planes: dict[object, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Every metric on one output/reference pair. Luma planes, and the MSE that PSNR and RMSE are made from, are
    computed once and shared, and a derived metric reuses its parts' scores when they are among `metrics`.

    `timings`: seconds spent on each metric are added under its name (a shared step counts for the first metric
    that needs it, parts not asked for count for the metric made from them). `reference_planes`: a dict kept by
    the caller for one reference image, in which its luma planes, and what metrics compute from them alone (the
    reference's SSIM maps), are remembered, so that scoring several outputs against it makes them once (the values
    are the same bits either way)."""
    planes: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    output_planes: dict[YMode, torch.Tensor] = {}
    mses: dict[tuple[YMode, int], torch.Tensor] = {}
    scores: dict[str, torch.Tensor] = {}

    def output_plane(mode: YMode) -> torch.Tensor:
        if mode not in output_planes:
            output_planes[mode] = own_plane(sr, mode)
        return output_planes[mode]

    def luma(mode: YMode) -> tuple[torch.Tensor, torch.Tensor]:
        if mode not in planes:
            if sr.shape[1] != hr.shape[1] or sr.shape[1] not in (1, 3):
                planes[mode] = luma_pair(sr, hr, mode)  # gray values of an RGB output, or luma_pair's error
            else:
                # Equal channel counts: each plane depends on its own image only (Y of RGB, or gray values as
                # they are), exactly as luma_pair chooses them.
                if reference_planes is None:
                    reference = own_plane(hr, mode)
                elif mode in reference_planes:
                    reference = reference_planes[mode]
                else:
                    reference = reference_planes[mode] = own_plane(hr, mode)
                planes[mode] = (output_plane(mode), reference)
        return planes[mode]

    def on_luma(metric: LumaMetric) -> torch.Tensor:
        mode, shave = metric.protocol.y_mode, metric.protocol.border
        if isinstance(metric, MseMetric):
            if (mode, shave) not in mses:
                mses[mode, shave] = functional.mse(*luma(mode), shave=shave)
            return metric.from_mse(mses[mode, shave])
        if reference_planes is None or sr.shape[1] != hr.shape[1]:  # the reference plane is not the kept one
            return metric.on_planes(*luma(mode))
        return metric.on_planes_sharing_reference(*luma(mode), reference_planes)

    def score(metric: Metric) -> torch.Tensor:
        if metric.info.name in scores:
            return scores[metric.info.name]
        if isinstance(metric, LumaMetric):
            value = on_luma(metric)
        elif isinstance(metric, OwnPlaneMetric):
            value = metric.on_plane(shaved(output_plane(metric.protocol.y_mode), metric.protocol.border))
        elif isinstance(metric, DerivedMetric):
            value = metric.combine({part.info.name: score(part) for part in metric.components})
        else:
            value = metric(sr, hr)
        scores[metric.info.name] = value
        return value

    plain = [m for m in metrics if not isinstance(m, DerivedMetric)]
    for metric in [*plain, *(m for m in metrics if isinstance(m, DerivedMetric))]:
        tick = time.perf_counter()
        score(metric)
        if timings is not None:
            timings[metric.info.name] = timings.get(metric.info.name, 0.0) + time.perf_counter() - tick
    return {m.info.name: scores[m.info.name] for m in metrics}


@register_metric
class PSNR(MseMetric):
    info = MetricInfo(
        "psnr", True, True, "dB", "PSNR on BT.601 Y (gray for 1-channel references), border shaved",
        label="PSNR", decimals=3, table_decimals=2,
    )  # fmt: skip

    def from_mse(self, mse: torch.Tensor) -> torch.Tensor:
        return functional.psnr_from_mse(mse)


@register_metric
class RMSE(MseMetric):
    info = MetricInfo(
        "rmse", False, True, "", "RMSE on Y (0-255), border shaved; the set value is sqrt(mean per-image MSE)", "rms",
        label="RMSE",
    )  # fmt: skip

    def from_mse(self, mse: torch.Tensor) -> torch.Tensor:
        return mse.sqrt()


@register_metric
class SSIM(LumaMetric):
    info = MetricInfo(
        "ssim", True, True, "", "SSIM (Gaussian 11x11, sigma 1.5, valid) on Y, border shaved",
        label="SSIM", table_decimals=4,
    )  # fmt: skip

    def on_planes(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return functional.ssim(sr, hr, shave=self.protocol.border)

    def on_planes_sharing_reference(
        self, sr: torch.Tensor, hr: torch.Tensor, reference: dict[object, torch.Tensor]
    ) -> torch.Tensor:
        # The reference's maps differ with the plane (Y mode), the shave and the window: all are in the key.
        key = ("ssim reference maps", self.protocol.y_mode, self.protocol.border, SSIM_WINDOW, SSIM_SIGMA)
        value, maps = functional.ssim_sharing_reference(sr, hr, reference.get(key), shave=self.protocol.border)
        reference[key] = maps
        return value

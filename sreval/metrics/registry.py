"""Metric registry: `create_metric(name, protocol)` and the metadata every metric carries.

A metric is a thin class over a pure function in `sreval.metrics.functional`: it takes uint8 images
(N, C, H, W) as they are stored, applies the protocol (luma plane, shave) and returns one float64 per image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch

from sreval.data.color import luma_pair
from sreval.errors import SrevalError
from sreval.metrics import functional
from sreval.protocol import Protocol


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    needs_reference: bool
    unit: str
    description: str


class Metric(ABC):
    info: ClassVar[MetricInfo]

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol

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


def create_metric(name: str, protocol: Protocol | None = None) -> Metric:
    try:
        cls = _REGISTRY[name.strip().lower()]
    except KeyError:
        raise SrevalError(f"unknown metric {name!r}; available: {', '.join(_REGISTRY)}") from None
    return cls(protocol or Protocol())


def parse_metrics(spec: str, protocol: Protocol) -> list[Metric]:
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    if not names:
        raise SrevalError(f"no metric named in {spec!r}; available: {', '.join(_REGISTRY)}")
    return [create_metric(n, protocol) for n in dict.fromkeys(names)]


def _luma_metric(fn: Callable[..., torch.Tensor]) -> Callable[[Metric, torch.Tensor, torch.Tensor], torch.Tensor]:
    def call(self: Metric, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        a, b = luma_pair(sr, hr, self.protocol.y_mode)
        return fn(a, b, shave=self.protocol.border)

    return call


@register_metric
class PSNR(Metric):
    info = MetricInfo("psnr", True, True, "dB", "PSNR on BT.601 Y (gray for 1-channel references), border shaved")
    __call__ = _luma_metric(functional.psnr)


@register_metric
class SSIM(Metric):
    info = MetricInfo("ssim", True, True, "", "SSIM (Gaussian 11x11, sigma 1.5, valid) on Y, border shaved")
    __call__ = _luma_metric(functional.ssim)

"""What every method is: `Method` turns a `MethodInput` (one benchmark image) into an SR image.

Methods are made from spec strings by `sreval.methods.specs`; the baselines (`nn`, `bicubic`, `hr`) are in
`baselines`, existing outputs in a folder in `folder`, networks in `network`. Computed outputs are cached on disk by
content by the evaluation path (`sreval.benchmark.evaluate`), which also makes every `MethodInput`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from sreval.datasets.registry import Dataset, ImageEntry
from sreval.imageio import LoadedImage
from sreval.protocol import Protocol


@dataclass
class MethodInput:
    """One benchmark image as a method sees it: the verified HR, and the LR made from it by the protocol.

    `degrade` makes the LR; it is given by the evaluation path, the one place that makes LR from HR, and called only
    when a method asks for `lr` (folder methods and `hr` never do)."""

    dataset: Dataset
    entry: ImageEntry
    hr: LoadedImage
    protocol: Protocol
    degrade: Callable[[], torch.Tensor]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @cached_property
    def lr(self) -> torch.Tensor:
        """(1, C, h, w) uint8 on `device`: MATLAB bicubic ×1/scale of the HR in the protocol's variant."""
        return self.degrade()


class Method(ABC):
    name: str
    #: True when the output is computed; False for methods that read existing files (never cached).
    computes_output: bool = True
    #: Whether a computed output is kept in the SR cache. False where computing it again costs less than writing
    #: and reading back its PNG (the interpolation baselines); its metric values are cached either way.
    cache_output: bool = True

    def metadata(self) -> dict[str, Any]:
        """Everything that determines the output besides the input image."""
        return {"name": self.name, "kind": type(self).__name__}

    def settings(self) -> dict[str, Any]:
        """How the method runs where that cannot change its output (a network's tiles and batch): recorded with
        the run, but kept out of `identity`, so that the cached outputs stay valid whatever the settings."""
        return {}

    def identity(self) -> str:
        """Hash of `metadata`: the method's part of its outputs' cache keys."""
        return _digest(self.metadata())

    def stored_metadata(self) -> dict[str, Any]:
        """What a stored run records about the method: `metadata` and `settings`."""
        return {**self.metadata(), **self.settings()}

    def stored_identity(self) -> str:
        """Hash of `stored_metadata`, the identity of the method's row in a store, where one identity has one
        metadata; equal to `identity` for a method without settings."""
        return _digest(self.stored_metadata())

    def images(self, dataset: Dataset) -> list[ImageEntry]:
        """Images this method has outputs for; computed methods cover the whole set."""
        return list(dataset.images)

    @abstractmethod
    def super_resolve(self, item: MethodInput) -> np.ndarray:
        """The SR image (H, W, C) uint8, same size as the mod-cropped HR."""


def _digest(metadata: dict[str, Any]) -> str:
    return hashlib.sha256(repr(sorted(metadata.items())).encode()).hexdigest()[:16]

"""Methods: anything that turns a benchmark image into an SR image.

A method is created from a spec string (`nn`, `bicubic`, `folder:PATH`, or a zoo model's name, see
`model_methods`); later packages register more (`register_method` for a name, `register_prefix` for
`prefix:ARG`) without touching the benchmark runner.
Methods that compute their output from the LR image are cached on disk by content; `folder:` methods read
files that already exist.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sreval.datasets.registry import Dataset, ImageEntry
from sreval.errors import SrevalError
from sreval.imageio import LoadedImage, from_tensor, load_image, to_tensor
from sreval.matlab.imresize import imresize
from sreval.methods.matching import match_folder
from sreval.protocol import Protocol

if TYPE_CHECKING:
    from sreval.inference import InferenceOptions

log = logging.getLogger(__name__)


@dataclass
class MethodInput:
    """One benchmark image as a method sees it: the verified HR, and the LR made from it by the protocol."""

    dataset: Dataset
    entry: ImageEntry
    hr: LoadedImage
    protocol: Protocol
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @cached_property
    def lr(self) -> torch.Tensor:
        """(1, C, h, w) uint8 on `device`: MATLAB bicubic ×1/scale of the HR in the protocol's variant."""
        hr = to_tensor(self.hr.pixels).to(self.device)
        return imresize(hr, 1 / self.protocol.scale, variant=self.protocol.degradation)


class Method(ABC):
    name: str
    #: True when the output is computed (and so worth caching); False for methods that read existing files.
    computes_output: bool = True

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


class NearestNeighbour(Method):
    name = "nn"

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "upsampling": "pixel replication (MATLAB imresize 'nearest')"}

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        s = item.protocol.scale
        return from_tensor(item.lr.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3))


class Bicubic(Method):
    name = "bicubic"

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "upsampling": "MATLAB imresize bicubic, uint8 (rounded after each pass)"}

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        return from_tensor(imresize(item.lr, float(item.protocol.scale), variant="uint8"))


class Folder(Method):
    """Existing SR outputs in a folder. The path may contain `{dataset}` (replaced by Set5, Set14, ...);
    otherwise a subfolder named like the dataset is used when present, else the folder itself."""

    computes_output = False

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = str(path)
        if name and not _is_text(name):
            raise SrevalError(
                f"method name '{as_text(name)}' is not valid UTF-8 text; method names go into the results store "
                "and the CSV files, so choose one that is (the folder's own name may still be anything)"
            )
        # A folder name need not be UTF-8 (Linux names are bytes) and is read as it is; the name derived from it
        # shows such bytes as \xNN escapes, because the results store and the CSV files hold text.
        self.name = name or as_text(Path(self.path.replace("{dataset}", "")).name or self.path)
        self._matches: dict[str, dict[str, Path]] = {}

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "path": as_text(str(Path(self.path).expanduser().resolve()))}

    def folder_for(self, dataset: Dataset) -> Path:
        if "{dataset}" in self.path:
            return Path(self.path.replace("{dataset}", dataset.folder)).expanduser()
        base = Path(self.path).expanduser()
        for candidate in (dataset.folder, dataset.key):
            if (base / candidate).is_dir():
                return base / candidate
        return base

    def images(self, dataset: Dataset) -> list[ImageEntry]:
        """The dataset's images that have an output file. The folder is matched, and what is wrong with it
        reported, once per dataset: later calls (the CLI asks before the run, the runner again) reuse that match,
        so each warning is printed once and the files scored are the files that were reported."""
        if dataset.key not in self._matches:
            self._matches[dataset.key] = self._match(dataset)
        files = self._matches[dataset.key]
        return [e for e in dataset.images if e.name in files]

    def _match(self, dataset: Dataset) -> dict[str, Path]:
        folder = self.folder_for(dataset)
        match = match_folder(folder, dataset)
        shown = as_text(str(folder))
        if match.unreadable:
            log.warning(
                "%s: %d entries in %s have an image suffix but cannot be read, so they match no %s image: %s",
                self.name, len(match.unreadable), shown, dataset.key,
                ", ".join(f"{as_text(p.name)} ({why})" for p, why in match.unreadable),
            )
        if match.missing:
            log.warning(
                "%s: %d of %d %s images have no output in %s: %s — the set mean is then not comparable to "
                "published means", self.name, len(match.missing), len(dataset.images), dataset.key, shown,
                ", ".join(match.missing),
            )
        if match.extra:
            log.warning("%s: %d files in %s match no %s image: %s", self.name, len(match.extra), shown,
                        dataset.key, ", ".join(as_text(p.name) for p in match.extra))
        return match.files

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        files = self._matches.get(item.dataset.key)
        if files is None:
            self.images(item.dataset)
            files = self._matches[item.dataset.key]
        if item.entry.name not in files:
            raise SrevalError(f"{self.name} has no output for {item.dataset.key} image {item.entry.name}")
        path = files[item.entry.name]
        image = load_image(path)
        hr_h, hr_w = item.hr.pixels.shape[:2]
        h, w = image.pixels.shape[:2]
        if (h, w) != (hr_h, hr_w):
            raise SrevalError(
                f"{path} is {w}x{h} but the reference {item.dataset.key}/{item.entry.name} is {hr_w}x{hr_h} "
                f"(HR mod-cropped to a multiple of {item.protocol.scale}); crop outputs made from the uncropped "
                "original to the mod-cropped size"
            )
        return image.pixels


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of a file name or argument that are not UTF-8
        return False
    return True


def as_text(value: str) -> str:
    """`value` as valid text: bytes that were not UTF-8 (Python keeps them as surrogate escapes in file names and
    arguments) become `\\xNN`, other unencodable characters `\\uNNNN`; valid text is returned unchanged."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


_NAMED: dict[str, Callable[[], Method]] = {"nn": NearestNeighbour, "bicubic": Bicubic}
_PREFIXED: dict[str, Callable[[str], Method]] = {"folder": Folder}


def register_method(name: str, factory: Callable[[], Method]) -> None:
    _NAMED[name] = factory


def register_prefix(prefix: str, factory: Callable[[str], Method]) -> None:
    _PREFIXED[prefix] = factory


def create_method(
    spec: str, *, options: InferenceOptions | None = None, asset_paths: dict[str, Any] | None = None
) -> Method:
    """`nn`, `bicubic`, `folder:PATH`, a zoo model's name (whatever other packages registered); `options` and
    `asset_paths` are for zoo models (how to run the network, where its external weights are)."""
    # Imported here: model_methods builds on this module.
    from sreval.methods.network import zoo_method, zoo_method_names

    spec = spec.strip()
    prefix, sep, arg = spec.partition(":")
    if sep and prefix in _PREFIXED:
        if not arg:
            raise SrevalError(f"method {spec!r} needs an argument after '{prefix}:'")
        return _PREFIXED[prefix](arg)
    if spec.lower() in _NAMED:
        return _NAMED[spec.lower()]()
    if (method := zoo_method(spec, options=options, asset_paths=asset_paths)) is not None:
        return method
    allowed = [*_NAMED, *(f"{p}:ARG" for p in _PREFIXED), *zoo_method_names()]
    raise SrevalError(f"unknown method {spec!r}; available: {', '.join(allowed)}")


def parse_methods(
    spec: str, *, options: InferenceOptions | None = None, asset_paths: dict[str, Any] | None = None
) -> list[Method]:
    """Comma-separated method specs (a `folder:` path must not itself contain commas)."""
    specs = [s.strip() for s in spec.split(",") if s.strip()]
    if not specs:
        raise SrevalError(f"no method named in {spec!r}")
    methods = [create_method(s, options=options, asset_paths=asset_paths) for s in specs]
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise SrevalError(f"two methods share a name in {spec!r}: {names}; name folders differently")
    return methods

"""The weights of zoo entries: safetensors files read and checked (never pickle: loading a zoo model must not
be able to run code), external files read through the checkpoint readers of `sreval.archs`, and the
comparison of a state dict with the one a network expects."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from sreval import assets
from sreval.archs import weight_loader
from sreval.errors import SrevalError
from sreval.zoo.entry import CONFIG, ZooEntry

#: How a PyTorch checkpoint starts (zip archive, or a legacy pickle's protocol byte); only used to explain why a
#: file that is not safetensors was refused (a safetensors header length may start with these bytes too).
_PICKLE_STARTS = (b"PK\x03\x04", b"\x80")


def parse_safetensors(data: bytes) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file's bytes; `ValueError` saying why not (without a file name) otherwise."""
    try:
        return safetensors.torch.load(data)
    except safetensors.SafetensorError as error:
        if data.startswith(_PICKLE_STARTS):
            raise ValueError(
                "not a valid safetensors file but a PyTorch pickle (.pth/.pt); sreval reads weights only from "
                "safetensors, because loading a pickle can run code"
            ) from None
        raise ValueError(
            f"not a valid safetensors file ({error}); it is truncated, damaged or of another format"
        ) from None


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file at `path`, or `SrevalError` naming the file and what is wrong.

    Read into memory rather than mapped: a mapped file that is replaced or truncated while in use would crash
    the process instead of raising."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SrevalError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return parse_safetensors(data)
    except ValueError as error:
        raise SrevalError(f"{path} is {error}") from None


def _safetensors_metadata(data: bytes, path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file: 8-byte little-endian header length, then a JSON header."""
    try:
        if len(data) < 8:
            raise ValueError("too short")
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("bad __metadata__")
        return {str(k): str(v) for k, v in metadata.items()}
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise SrevalError(f"{path} is not a safetensors file") from None


def read_trained(entry: ZooEntry) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a trained entry's file, after checking it against the config's sha256."""
    path = entry.weights_path
    assert path is not None
    if not path.is_file():
        raise SrevalError(f"{path} is missing (the config of zoo model {entry.name!r} says its weights are trained)")
    data = path.read_bytes()  # one read for checksum and parsing: what was verified is what gets loaded
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.weights.sha256:
        raise SrevalError(
            f"{path} has sha256 {digest}, but {entry.folder / CONFIG} says {entry.weights.sha256}: the file was "
            f"changed or replaced after the entry was written"
        )
    metadata = _safetensors_metadata(data, path)
    try:
        return parse_safetensors(data), metadata
    except ValueError as error:
        raise SrevalError(f"{path} is {error}") from None


def check_metadata(entry: ZooEntry, metadata: Mapping[str, str], path: Path) -> None:
    """A file saved by sreval names its architecture; a config edited to another one is caught here."""
    if "architecture" in metadata and metadata["architecture"] != entry.architecture:
        raise SrevalError(
            f"{path} was saved from architecture {metadata['architecture']!r}, but {entry.folder / CONFIG} says "
            f"{entry.architecture!r}"
        )
    if "arch_args" in metadata:
        try:
            saved = json.loads(metadata["arch_args"])
        except ValueError:
            raise SrevalError(f"{path}: its arch_args metadata is not JSON: {metadata['arch_args']!r}") from None
        if saved != json.loads(json.dumps(entry.model_kwargs())):
            raise SrevalError(
                f"{path} was saved with arch_args {saved}, but {entry.folder / CONFIG} gives {entry.model_kwargs()}"
            )


def read_external(
    entry: ZooEntry, asset_paths: Mapping[str, str | os.PathLike[str]] | None
) -> tuple[dict[str, torch.Tensor], Path]:
    """The CPU state dict an external entry's checkpoint reader makes of its asset file, and that file."""
    assert entry.weights.asset is not None and entry.weights.loader is not None
    loader = weight_loader(entry.weights.loader)
    source = assets.resolve(entry.weights.asset, (asset_paths or {}).get(entry.weights.asset))
    loaded = loader(source)
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise SrevalError(f"weight loader {entry.weights.loader!r} did not return a state dict for {source}")
    return {str(k): v.to("cpu") for k, v in loaded.items()}, source


def checksum_status(entry: ZooEntry) -> str:
    """For trained entries: 'ok', 'mismatch' or 'missing'; for the others, their status."""
    path = entry.weights_path
    if path is None:
        return entry.weights.status
    if not path.is_file():
        return "missing"
    return "ok" if assets.sha256_of(path) == entry.weights.sha256 else "mismatch"


def tensor_summary(entry: ZooEntry) -> tuple[int, int]:
    """(number of tensors, number of elements) in a trained entry's verified file."""
    tensors, _ = read_trained(entry)
    return len(tensors), sum(t.numel() for t in tensors.values())

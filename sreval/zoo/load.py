"""Building a zoo entry's network and loading its checked weights into it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from sreval.archs import create_model
from sreval.archs.state_dicts import state_dict_mismatch
from sreval.errors import SrevalError
from sreval.zoo.entry import ZooEntry
from sreval.zoo.locations import resolve_entry
from sreval.zoo.weights import check_metadata, read_external, read_trained


def build(entry: ZooEntry, device: str | torch.device = "cpu") -> nn.Module:
    """The entry's architecture with its arch_args (untrained); on the meta device it costs no memory."""
    try:
        with torch.device(device):
            return create_model(entry.architecture, **entry.model_kwargs())
    except (TypeError, ValueError, SrevalError) as e:  # the factory's own message, placed in the config that caused it
        where = entry.config_path
        raise SrevalError(f"{where}: arch_args do not fit architecture {entry.architecture!r}: {e}") from None


def count_parameters(entry: ZooEntry) -> int:
    """Parameters of the entry's architecture (built on the meta device: shapes only, no memory or init)."""
    return sum(p.numel() for p in build(entry, device="meta").parameters())


def check_fits(entry: ZooEntry, model: nn.Module, state: Mapping[str, torch.Tensor], source: Path | str) -> None:
    """`state` loads strictly into `model`, or an error naming every key and shape that does not fit."""
    problems = state_dict_mismatch(model.state_dict(), state)
    if problems:
        raise SrevalError(
            f"weights in {source} do not fit zoo model {entry.name!r} ({entry.describe_arch()}): " + "; ".join(problems)
        )


def _weights_and_model(
    entry: ZooEntry, asset_paths: Mapping[str, str | os.PathLike[str]] | None
) -> tuple[dict[str, torch.Tensor], nn.Module]:
    """The entry's verified state dict (CPU) and an architecture instance (CPU) it fits."""
    if not entry.has_weights:
        raise SrevalError(f"zoo model {entry.name!r} has no weights ({entry.weights.status}): {entry.weights.reason}")
    source: Path
    if entry.weights.status == "trained":
        tensors, metadata = read_trained(entry)
        assert entry.weights_path is not None
        source = entry.weights_path
        check_metadata(entry, metadata, source)
    else:
        tensors, source = read_external(entry, asset_paths)
    model = build(entry)
    check_fits(entry, model, tensors, source)
    return tensors, model


def load_state_dict(
    model: str | ZooEntry,
    asset_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    roots: Sequence[Path] | None = None,
) -> dict[str, torch.Tensor]:
    """The verified weights of a zoo model as a CPU state dict."""
    return _weights_and_model(resolve_entry(model, roots), asset_paths)[0]


def load_model(
    model: str | ZooEntry,
    device: str | torch.device = "cpu",
    asset_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    roots: Sequence[Path] | None = None,
) -> nn.Module:
    """Builds a zoo model's architecture and loads its checked weights; returned in eval mode on `device`.

    Errors (all `SrevalError`): unknown name; no weights (quoting the config's reason); a file whose sha256
    differs from the config; weights that do not fit the architecture (missing and unexpected keys and every
    shape mismatch named); an external file that is not installed or a loader that is not registered.
    `asset_paths` maps asset names to explicit files (asset name → path).
    """
    state, module = _weights_and_model(resolve_entry(model, roots), asset_paths)
    module.load_state_dict(state, strict=True)
    return module.to(device).eval()

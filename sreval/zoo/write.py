"""Writing a zoo entry: weights (safetensors), model card and, last, its config.

Files are written atomically and `config.yaml` last, so a folder only becomes an entry once it is complete;
an interrupted save leaves a folder without a config, which is ignored and overwritten by the next save.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import safetensors.torch
import torch
import yaml
from torch import nn

from sreval import __version__
from sreval.errors import ParameterError
from sreval.fileutil import atomic_open
from sreval.zoo.card import model_card
from sreval.zoo.entry import WEIGHTS, Weights, ZooEntry, check_name, parse_config, read_entry
from sreval.zoo.load import build, check_fits
from sreval.zoo.locations import check_free, write_root

#: The checksum of an entry that is being written; `write_entry` replaces it with the file's.
PENDING = Weights("trained", WEIGHTS, "0" * 64)


def _tensors_for_file(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors wants dense, contiguous CPU tensors that share no memory: a clone guarantees all three
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}


def json_args(arch_args: Mapping[str, Any]) -> dict[str, Any]:
    """`arch_args` as the plain values a config holds, or a `ParameterError` when they are not plain."""
    try:
        result: dict[str, Any] = json.loads(json.dumps(dict(arch_args)))
    except (TypeError, ValueError):
        raise ParameterError(
            "arch_args",
            f"arch_args {dict(arch_args)} must be plain values (numbers, strings, lists) to be written to a config",
        ) from None
    return result


def write_entry(
    state: Mapping[str, torch.Tensor],
    entry: ZooEntry,
    metadata: Mapping[str, str] | None,
    overwrite: bool,
    training: str | None = None,
    metrics: str | None = None,
) -> ZooEntry:
    """Checks `state` against the entry's architecture, then writes weights, card and (last) config."""
    template = build(entry, device="meta")
    check_fits(entry, template, state, "the state dict to save")
    config_path = entry.config_path
    if config_path.exists():
        if not overwrite:
            raise ParameterError(
                "name", f"zoo model {entry.name!r} already exists at {entry.folder}; pass overwrite to replace it"
            )
        # un-commit first: a save that fails halfway must not leave the old config vouching for new weights
        config_path.unlink()
    file_metadata = {
        **(metadata or {}),
        "format": "pt",
        "name": entry.name,
        "architecture": entry.architecture,
        "arch_args": json.dumps(entry.model_kwargs(), sort_keys=True),
        "sreval_version": __version__,
    }
    data = safetensors.torch.save(_tensors_for_file(state), metadata=file_metadata)
    with atomic_open(entry.folder / WEIGHTS, "wb") as f:
        f.write(data)
    entry = replace(entry, weights=Weights("trained", WEIGHTS, hashlib.sha256(data).hexdigest()))
    n_params = sum(p.numel() for p in template.parameters())
    with atomic_open(entry.card_path, "w", encoding="utf-8") as f:
        f.write(model_card(entry, n_params, training, metrics))
    with atomic_open(config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(entry.to_config(), f, sort_keys=False, allow_unicode=True)
    return read_entry(entry.folder)


def save_model(
    module: nn.Module,
    name: str,
    architecture: str,
    arch_args: Mapping[str, Any] | None = None,
    scale: int = 4,
    recipe: str | None = None,
    description: str = "",
    metadata: Mapping[str, str] | None = None,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    training: str | None = None,
    metrics: str | None = None,
) -> ZooEntry:
    """Writes `module`'s weights as a new zoo entry `root/name` (root default: `write_root()`).

    The state dict must fit `create_model(architecture, **arch_args)` exactly. The model card is generated from
    the config, with `training` (data, steps, time) and `metrics` (what sreval measured) as its sections;
    `metadata` goes into the safetensors header. An existing name is an error unless `overwrite`.
    """
    check_name(name)
    target = write_root(root)
    check_free(name, target, overwrite)
    entry = ZooEntry(
        name=name,
        architecture=architecture,
        scale=scale,
        weights=PENDING,
        description=description or f"{architecture} ×{scale}",
        folder=target / name,
        arch_args=json_args(arch_args or {}),
        recipe=recipe,
    )
    parse_config(entry.to_config(), entry.folder)  # the same rules as a hand-written config
    return write_entry(module.state_dict(), entry, metadata, overwrite, training, metrics)

"""Tiny zoo models and hand-written entries for the zoo tests, in a temporary zoo root."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
import yaml
from torch import nn

from sreval import zoo
from sreval.archs import create_model

TINY = {"num_blocks": 1, "num_feat": 8}  # srresnet with BatchNorm, so integer buffers are in the state dict


def isolated_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty zoo root that is the default write root (SREVAL_ZOO); the user's own zoo stays out of reach."""
    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path / "zoo"


def tiny(seed: int, **kwargs: Any) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("srresnet", **{**TINY, **kwargs})
    model.train()(torch.rand(2, 3, 8, 8))  # one training-mode pass: non-trivial BN running stats and counters
    return model.eval()


def save_tiny(name: str, seed: int = 0, **kwargs: Any) -> tuple[nn.Module, zoo.ZooEntry]:
    model = tiny(seed, **kwargs)
    entry = zoo.save_model(model, name, "srresnet", {**TINY, **kwargs}, scale=4, recipe="test",
                           description="tiny test model")
    return model, entry


def write_raw_entry(root: Path, name: str, tensors: dict[str, torch.Tensor], arch_args: dict[str, Any]) -> Path:
    """An entry written by hand (no sreval metadata in the file), with a correct checksum."""
    folder = root / name
    folder.mkdir(parents=True)
    data = safetensors.torch.save(tensors)
    (folder / "model.safetensors").write_bytes(data)
    config = {"name": name, "architecture": "srresnet", "arch_args": arch_args, "scale": 4, "recipe": None,
              "weights": {"status": "trained", "file": "model.safetensors", "sha256": hashlib.sha256(data).hexdigest()},
              "description": "hand-made"}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def edit_config(folder: Path, **changes: Any) -> None:
    path = folder / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config))

"""What the training tests share: tiny networks, a folder of small training images, tiny recipes, the `sreval
train` command line for subprocess runs, and ways to damage a file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sreval.train import recipes

TINY_G = {
    "srresnet": {"num_blocks": 1, "num_feat": 8},
    "enhancenet": {"num_blocks": 1, "num_feat": 8},
    "rrdbnet": {"num_block": 1, "num_feat": 8, "num_grow_ch": 4},
}
TINY_D = {"num_feat": 8}


def make_train_dir(folder: Path) -> Path:
    """Twelve small natural-looking training images (smooth gradients + noise), one too small to crop."""
    rng = np.random.default_rng(0)
    for i in range(12):
        h, w = rng.integers(40, 70, size=2)
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / (3 + i)), np.cos(yy / (4 + i)), np.sin((xx + yy) / 7)], axis=-1)
        img = np.clip(127 + 80 * base + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:02d}.png")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "tiny.png")
    return folder


def tiny(name: str, **changes: Any) -> recipes.Recipe:
    r = recipes.get_recipe(name)
    overrides: dict[str, Any] = {
        "generator_args": TINY_G[r.generator],
        "crop": 32,
        "batch": 4,
        "workers": 0,
        "log_every": 1,
        "checkpoint_every": 2,
        "validate_every": 0,
        "init_from": None,
        "channels_last": False,
    }
    if r.discriminator:
        overrides["discriminator_args"] = TINY_D
    return recipes.with_overrides(r, {**overrides, **changes}).scaled_to(changes.get("steps", 4))


def cli_train(out: Path, train_dir: Path, steps: int, extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    return [
        sys.executable,
        "-m",
        "sreval",
        "train",
        "enhancenet-e",
        "--out",
        str(out),
        "--train-dir",
        str(train_dir),
        "--steps",
        str(steps),
        "--device",
        "cpu",
        "-q",
        "--set",
        "generator_args={num_blocks: 1, num_feat: 8}",
        "--set",
        "crop=32",
        "--set",
        "batch=4",
        "--set",
        "workers=0",
        "--set",
        "log_every=1",
        "--set",
        "checkpoint_every=3",
        "--set",
        "validate_every=0",
        "--set",
        "channels_last=false",
        *extra,
    ]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("WORLD_SIZE", None)
    return env


class RunsCode:
    """Unpickling this calls print: what a tampered checkpoint could do if it were loaded without weights_only."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return print, ("UNPICKLED CODE RAN",)


def damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "tampered":
        torch.save({"opt_g": RunsCode()}, path)
    elif how == "keys":
        torch.save({"something": torch.zeros(1)}, path)  # readable, but not what sreval wrote
    else:
        path.write_text("not a checkpoint\n")

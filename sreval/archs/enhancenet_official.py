"""The official EnhanceNet-PAT release (msmsajjadi/EnhanceNet-Code): its TF1 checkpoint in our EnhanceNet, and
the pieces of its pipeline that differ from sreval's protocol.

What the authors' script does, and how each step is reproduced here:

1. LR: the HR image is converted to RGB and shrunk ×1/4 with PIL's antialiasing filter (`Image.ANTIALIAS`,
   today's `Image.LANCZOS`) to (w // 4, h // 4) — not MATLAB bicubic. `official_downsample`.
2. The network sees `img / 255 − PER_CHANNEL_MEANS` (float32) and predicts a residual; the output is
   residual + (TF1 bicubic ×4 of the centred input) + means; `sreval.archs.tf1_resize` reproduces that resize
   and is passed to `EnhanceNet` as its `upsample`.
3. Saving: `scipy.misc.toimage(255·y, cmin=0, cmax=255)`, i.e. clip to [0, 255], add 0.5, truncate.
   `official_quantise`.

Weights: variables `generator/Conv/…`, `generator/Conv_1/…` … `generator/Conv_24/…` are TF-slim convolutions in
creation order (head, two per residual block, one per ×2 step, the HR conv, the output conv), kernels in HWIO
layout. `load_official_state_dict` maps them onto our module names and reads the block count from the file.

Licence: CC BY-NC-ND 4.0 (research use of the unmodified file). sreval reads the file as it is at run time and
never writes a converted copy of the weights.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sreval.archs.enhancenet import EnhanceNet
from sreval.archs.registry import register_weight_loader
from sreval.archs.tf1_checkpoint import CheckpointError, read_tf1_checkpoint
from sreval.archs.tf1_resize import tf1_resize_bicubic

#: `PER_CHANNEL_MEANS` of the official script (RGB, on the [0, 1] scale).
OFFICIAL_MEAN = (0.47614917, 0.45001204, 0.40904046)
OFFICIAL_SCALE = 4

_CONV_NAME = re.compile(r"^generator/Conv(?:_(\d+))?/(weights|biases)$")


def official_downsample(hr: np.ndarray, scale: int = OFFICIAL_SCALE) -> np.ndarray:
    """The official script's LR: HR (H, W, C) uint8 → RGB, PIL antialias (Lanczos) to (W // scale, H // scale)."""
    image = Image.fromarray(hr[..., 0] if hr.ndim == 3 and hr.shape[2] == 1 else hr).convert("RGB")
    w, h = image.size
    return np.array(image.resize((w // scale, h // scale), Image.Resampling.LANCZOS))


def official_quantise(y: torch.Tensor) -> torch.Tensor:
    """scipy.misc.toimage(255·y, cmin=0, cmax=255): clip, +0.5, truncate → uint8."""
    return ((y.to(torch.float32) * 255).clamp(0, 255) + 0.5).to(torch.uint8)


def load_official_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], int]:
    """The checkpoint's convolutions as our EnhanceNet state dict (OIHW), with the number of residual blocks."""
    arrays = read_tf1_checkpoint(path)
    convs: dict[int, dict[str, np.ndarray]] = {}
    for name, value in arrays.items():
        match = _CONV_NAME.match(name)
        if match is None:
            raise CheckpointError(f"{path}: unexpected variable {name!r}; not an EnhanceNet generator checkpoint")
        convs.setdefault(int(match.group(1) or 0), {})[match.group(2)] = value
    count = len(convs)
    if sorted(convs) != list(range(count)) or any(len(parts) != 2 for parts in convs.values()):
        raise CheckpointError(f"{path}: convolutions are not numbered Conv, Conv_1 … with weights and biases each")
    # head + 2 per block + 2 upsampling convs (×4) + HR conv + output conv
    num_blocks, rest = divmod(count - 5, 2)
    if rest or num_blocks < 1:
        raise CheckpointError(f"{path}: {count} convolutions do not form an EnhanceNet ×4 generator")
    names = ["head"]
    for b in range(num_blocks):
        names += [f"body.{b}.conv1", f"body.{b}.conv2"]
    names += ["up_convs.0", "up_convs.1", "conv_hr", "conv_last"]
    state: dict[str, torch.Tensor] = {}
    for i, module in enumerate(names):
        state[f"{module}.weight"] = torch.from_numpy(np.ascontiguousarray(convs[i]["weights"].transpose(3, 2, 0, 1)))
        state[f"{module}.bias"] = torch.from_numpy(convs[i]["biases"].copy())
    state["mean"] = torch.tensor(OFFICIAL_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    return state, num_blocks


def load_official_enhancenet(path: str | Path) -> EnhanceNet:
    """Our EnhanceNet with the official weights, means and TF1 bicubic residual path (eval mode)."""
    state, num_blocks = load_official_state_dict(path)
    num_feat = state["head.weight"].shape[0]
    model = EnhanceNet(
        scale=OFFICIAL_SCALE,
        num_blocks=num_blocks,
        num_feat=num_feat,
        mean=OFFICIAL_MEAN,
        upsample=tf1_resize_bicubic,
    )
    model.load_state_dict(state)
    return model.eval()


def _zoo_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state, _ = load_official_state_dict(path)
    return state


# The zoo entry `enhancenet-pat-official` names this reader as its loader.
register_weight_loader("enhancenet-pat-tf1", _zoo_state_dict)

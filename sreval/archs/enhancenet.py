"""EnhanceNet generator (Sajjadi et al., "EnhanceNet: Single Image Super-Resolution Through Automated Texture
Synthesis", ICCV 2017; official code msmsajjadi/EnhanceNet-Code).

conv3×3 3→64 + ReLU; 10 residual blocks (conv-ReLU-conv, + skip); per ×2 step nearest-neighbour upsampling +
conv3×3 + ReLU (twice for ×4: resize-then-conv avoids the checkerboard artefacts of transposed convs);
conv3×3 64→64 + ReLU; conv3×3 64→3. The network only predicts a residual that is added to the bicubically
upsampled input, so it need not re-learn the low frequencies.

Mean handling: the official code centres the input by per-channel means, upsamples the centred input and adds
the means back at the end: out = residual(x − mean) + (upsample(x − mean) + mean). `mean` defaults to zeros.
(Bicubic interpolation reproduces constants, so this equals residual + upsample(x) up to float rounding; the
official order is kept so the official weights reproduce the official outputs as closely as floats allow.)

Bicubic: `upsample` is chosen at construction. The default is torch's `F.interpolate(mode="bicubic",
align_corners=False)`; the official weights are used with TensorFlow 1's resize (`sreval.archs.tf1_resize`),
whose kernel and pixel alignment differ. The registered factory takes them by name ("torch", "tf1") so a
model config can say which.

Range: takes RGB in [0, 1], returns RGB on the same scale with no final activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sreval.archs._common import num_x2_stages
from sreval.archs.registry import register_model
from sreval.archs.tf1_resize import tf1_resize_bicubic
from sreval.errors import ParameterError

#: (image (N, C, H, W), integer scale) → (N, C, scale·H, scale·W)
Upsampler = Callable[[torch.Tensor, int], torch.Tensor]


def torch_bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Torch's bicubic resize (a = −0.75, half-pixel centres); not TF1's, see the module docstring."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


class ResidualBlock(nn.Module):
    """conv3×3-ReLU-conv3×3 with identity skip (no BN, as in the official code)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.conv2(F.relu(self.conv1(x)))
        return out


class EnhanceNet(nn.Module):
    """EnhanceNet generator with residual learning over an `upsample` of the input; `scale` ∈ {2, 4, 8}."""

    mean: torch.Tensor

    def __init__(
        self,
        scale: int = 4,
        num_blocks: int = 10,
        num_feat: int = 64,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        upsample: Upsampler = torch_bicubic,
    ) -> None:
        super().__init__()
        if len(mean) != 3:
            raise ParameterError("mean", f"mean {tuple(mean)} must have one value per RGB channel")
        self.scale = scale
        self.upsample = upsample
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.head = nn.Conv2d(3, num_feat, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(num_feat) for _ in range(num_blocks)))
        self.up_convs = nn.ModuleList(nn.Conv2d(num_feat, num_feat, 3, padding=1) for _ in range(num_x2_stages(scale)))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] → (N, 3, scale·H, scale·W), unclamped."""
        centred = x - self.mean
        feat = self.body(F.relu(self.head(centred)))
        for conv in self.up_convs:
            feat = F.relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        residual = self.conv_last(F.relu(self.conv_hr(feat)))
        out: torch.Tensor = residual + (self.upsample(centred, self.scale) + self.mean)
        return out


UPSAMPLERS: dict[str, Upsampler] = {"torch": torch_bicubic, "tf1": tf1_resize_bicubic}


@register_model("enhancenet")
def enhancenet(
    scale: int = 4,
    num_blocks: int = 10,
    num_feat: int = 64,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    upsample: str = "torch",
) -> EnhanceNet:
    """EnhanceNet generator (10 residual blocks, 64 features, ×4 by default); `upsample` is "torch" or "tf1"."""
    if upsample not in UPSAMPLERS:
        raise ParameterError(
            "upsample", f"unknown upsample {upsample!r} for enhancenet; choose one of {', '.join(UPSAMPLERS)}"
        )
    return EnhanceNet(scale=scale, num_blocks=num_blocks, num_feat=num_feat, mean=mean, upsample=UPSAMPLERS[upsample])

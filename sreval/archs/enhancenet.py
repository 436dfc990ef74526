"""EnhanceNet generator (Sajjadi et al., "EnhanceNet: Single Image Super-Resolution Through Automated Texture
Synthesis", ICCV 2017; official code msmsajjadi/EnhanceNet-Code).

conv3×3 3→64 + ReLU; 10 residual blocks (conv-ReLU-conv, + skip); per ×2 step nearest-neighbour upsampling +
conv3×3 + ReLU (twice for ×4: resize-then-conv avoids the checkerboard artefacts of transposed convs);
conv3×3 64→64 + ReLU; conv3×3 64→3. The network only predicts a residual that is added to the bicubically
upsampled input, so it need not re-learn the low frequencies.

Mean handling: the official code feeds the network the input minus per-channel means and adds them back at
the end. `mean` (default zeros) is subtracted from the network's input; because bicubic interpolation
reproduces constants, bicubic(x − mean) + mean = bicubic(x), so the residual is added to bicubic(x) directly.

Bicubic: `upsample` is chosen at construction. The default is torch's `F.interpolate(mode="bicubic",
align_corners=False)`; the official path uses TensorFlow 1's `tf.image.resize_bicubic`, whose kernel and
pixel alignment differ — issue 4 provides that resize, to be passed here when loading the official weights.

Range: takes RGB in [0, 1], returns RGB on the same scale with no final activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sreval.archs._common import num_x2_stages
from sreval.archs.registry import register_model
from sreval.errors import SrevalError

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
            raise SrevalError(f"mean {tuple(mean)} must have one value per RGB channel")
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
        feat = self.body(F.relu(self.head(x - self.mean)))
        for conv in self.up_convs:
            feat = F.relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        residual = self.conv_last(F.relu(self.conv_hr(feat)))
        out: torch.Tensor = self.upsample(x, self.scale) + residual
        return out


@register_model("enhancenet")
def enhancenet(
    scale: int = 4,
    num_blocks: int = 10,
    num_feat: int = 64,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    upsample: Upsampler = torch_bicubic,
) -> EnhanceNet:
    """EnhanceNet generator (10 residual blocks, 64 features, ×4 by default)."""
    return EnhanceNet(scale=scale, num_blocks=num_blocks, num_feat=num_feat, mean=mean, upsample=upsample)

"""SRResNet, the generator of SRGAN (Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a
Generative Adversarial Network", CVPR 2017, Fig. 4).

Layout: 9×9 conv (3→64) + PReLU; B residual blocks (conv3×3-BN-PReLU-conv3×3-BN, identity skip);
conv3×3-BN plus the long skip from the first layer; log2(scale) sub-pixel ×2 stages (conv 64→256,
PixelShuffle(2), PReLU); 9×9 conv 64→3.

Choices the paper leaves open, and why:
- Convolutions that feed a BatchNorm have no bias: BN subtracts the batch mean, so such a bias never
  receives a gradient and would only add dead parameters.
- PReLU slopes are per channel (the form He et al. 2015 introduced and SRGAN cites).
With these the full ×4 model has 1,548,547 parameters — the paper's "1.5M".

Range: takes RGB in [0, 1] and returns RGB on the same scale with no final activation (clamp when saving).
"""

from __future__ import annotations

import torch
from torch import nn

from sreval.archs._common import num_x2_stages
from sreval.archs.registry import register_model


def _conv_bn(channels: int) -> list[nn.Module]:
    return [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)]


class ResidualBlock(nn.Module):
    """conv3×3-BN-PReLU-conv3×3-BN with an identity skip (no activation after the sum, as in the paper)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(channels), nn.PReLU(channels), *_conv_bn(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.body(x)
        return out


class SubPixelUpsample(nn.Module):
    """×2 sub-pixel convolution (Shi et al. 2016): conv to 4× channels, PixelShuffle(2), PReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.shuffle(self.conv(x)))
        return out


class SRResNet(nn.Module):
    """SRResNet generator; `num_blocks`/`num_feat` shrink it for tests, `scale` ∈ {2, 4, 8}."""

    def __init__(self, scale: int = 4, num_blocks: int = 16, num_feat: int = 64, in_ch: int = 3, out_ch: int = 3):
        super().__init__()
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(in_ch, num_feat, 9, padding=4), nn.PReLU(num_feat))
        self.body = nn.Sequential(*(ResidualBlock(num_feat) for _ in range(num_blocks)), *_conv_bn(num_feat))
        self.upsample = nn.Sequential(*(SubPixelUpsample(num_feat) for _ in range(num_x2_stages(scale))))
        self.tail = nn.Conv2d(num_feat, out_ch, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] → (N, 3, scale·H, scale·W), unclamped."""
        feat = self.head(x)
        feat = feat + self.body(feat)  # long skip over the whole residual trunk
        out: torch.Tensor = self.tail(self.upsample(feat))
        return out


@register_model("srresnet")
def srresnet(scale: int = 4, num_blocks: int = 16, num_feat: int = 64) -> SRResNet:
    """SRResNet as in the SRGAN paper (16 blocks, 64 features, ×4 by default)."""
    return SRResNet(scale=scale, num_blocks=num_blocks, num_feat=num_feat)

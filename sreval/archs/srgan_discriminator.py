"""The SRGAN discriminator (Ledig et al. 2017, Fig. 4, bottom).

Eight 3×3 convolutions with 64, 64, 128, 128, 256, 256, 512, 512 channels and strides 1, 2, 1, 2, 1, 2, 1, 2,
LeakyReLU(0.2), BatchNorm on all but the first; then dense 1024 + LeakyReLU + dense 1.

The dense layer sits on the flattened 512 × (input_size/16)² map, as in the paper (96 px crops → 512×6×6).
We keep that fixed input size rather than adaptive pooling so that the published model is reproduced exactly;
`input_size` may be any multiple of 16. Returns logits: the sigmoid is left to the loss
(`binary_cross_entropy_with_logits`), which is numerically stable where sigmoid + log is not.
"""

from __future__ import annotations

import torch
from torch import nn

from sreval.archs.registry import register_model
from sreval.errors import ParameterError, SrevalError

_CHANNELS = (64, 64, 128, 128, 256, 256, 512, 512)
_STRIDES = (1, 2, 1, 2, 1, 2, 1, 2)


class SRGANDiscriminator(nn.Module):
    """SRGAN discriminator for `input_size`×`input_size` RGB patches; `num_feat` scales all widths (paper: 64)."""

    def __init__(self, input_size: int = 96, num_feat: int = 64, in_ch: int = 3) -> None:
        super().__init__()
        if input_size <= 0 or input_size % 16:
            raise ParameterError(
                "input_size", f"input_size {input_size} must be a positive multiple of 16 (4 stride-2 convs)"
            )
        self.input_size = input_size
        layers: list[nn.Module] = []
        prev = in_ch
        for i, (mult, stride) in enumerate(zip(_CHANNELS, _STRIDES, strict=True)):
            ch = mult * num_feat // 64
            # A conv feeding BN gets no bias: BN's mean subtraction would cancel it.
            layers.append(nn.Conv2d(prev, ch, 3, stride=stride, padding=1, bias=i == 0))
            if i > 0:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2))
            prev = ch
        self.features = nn.Sequential(*layers)
        side = input_size // 16
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(prev * side * side, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, input_size, input_size) → (N, 1) logits (positive = judged real)."""
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise SrevalError(f"input of size {tuple(x.shape[-2:])}; this discriminator takes {self.input_size}²")
        out: torch.Tensor = self.classifier(self.features(x))
        return out


@register_model("srgan-discriminator")
def srgan_discriminator(input_size: int = 96, num_feat: int = 64) -> SRGANDiscriminator:
    """SRGAN's discriminator for 96 px patches (the paper's training crop size)."""
    return SRGANDiscriminator(input_size=input_size, num_feat=num_feat)

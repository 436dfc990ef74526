"""ESRGAN's VGG-style discriminator for 128 px patches (BasicSR `VGGStyleDiscriminator`, num_feat 64).

Five stages, each a 3×3 stride-1 conv and a 4×4 stride-2 conv (stage widths 64, 128, 256, 512, 512), BatchNorm
after every conv but the first, LeakyReLU(0.2), then linear 512·4·4 → 100, LeakyReLU, linear 100 → 1.
Names (conv0_0, bn0_1, …, linear1, linear2) follow BasicSR so its weights load directly.

Returns logits; ESRGAN uses them in the relativistic average loss, which needs raw logits, not probabilities.
"""

from __future__ import annotations

import torch
from torch import nn

from sreval.archs.registry import register_model
from sreval.errors import ParameterError, SrevalError

_STAGE_MULT = (1, 2, 4, 8, 8)


class VGGStyleDiscriminator(nn.Module):
    """VGG-style discriminator for `input_size`² patches (multiple of 32; ESRGAN trains on 128)."""

    def __init__(self, input_size: int = 128, num_feat: int = 64, in_ch: int = 3) -> None:
        super().__init__()
        if input_size <= 0 or input_size % 32:
            raise ParameterError(
                "input_size", f"input_size {input_size} must be a positive multiple of 32 (5 stride-2 convs)"
            )
        self.input_size = input_size
        prev = in_ch
        for i, mult in enumerate(_STAGE_MULT):
            ch = num_feat * mult
            # conv0_0 is the only conv without BN after it, hence the only one with a bias.
            self.add_module(f"conv{i}_0", nn.Conv2d(prev, ch, 3, 1, 1, bias=i == 0))
            if i > 0:
                self.add_module(f"bn{i}_0", nn.BatchNorm2d(ch))
            self.add_module(f"conv{i}_1", nn.Conv2d(ch, ch, 4, 2, 1, bias=False))
            self.add_module(f"bn{i}_1", nn.BatchNorm2d(ch))
            prev = ch
        side = input_size // 32
        self.linear1 = nn.Linear(prev * side * side, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, input_size, input_size) → (N, 1) logits."""
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise SrevalError(f"input of size {tuple(x.shape[-2:])}; this discriminator takes {self.input_size}²")
        layers = dict(self.named_children())
        feat = x
        for i in range(len(_STAGE_MULT)):
            for j in (0, 1):
                feat = layers[f"conv{i}_{j}"](feat)
                if f"bn{i}_{j}" in layers:
                    feat = layers[f"bn{i}_{j}"](feat)
                feat = self.lrelu(feat)
        out: torch.Tensor = self.linear2(self.lrelu(self.linear1(feat.flatten(1))))
        return out


@register_model("esrgan-discriminator")
def esrgan_discriminator(input_size: int = 128, num_feat: int = 64) -> VGGStyleDiscriminator:
    """ESRGAN's discriminator for 128 px patches."""
    return VGGStyleDiscriminator(input_size=input_size, num_feat=num_feat)

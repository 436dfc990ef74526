"""RRDBNet, the ESRGAN generator (Wang et al., "ESRGAN: Enhanced Super-Resolution Generative Adversarial
Networks", ECCV Workshops 2018).

conv_first → 23 Residual-in-Residual Dense Blocks → conv_body (+ long skip) → two (nearest ×2, conv, LeakyReLU)
stages → conv_hr + LeakyReLU → conv_last. No BatchNorm: the paper drops it because BN's batch statistics
cause artefacts at test time and limit generalisation.

Parameter names follow BasicSR's `RRDBNet` (conv_first, body.N.rdb1.conv1, conv_body, conv_up1, conv_up2,
conv_hr, conv_last) so that the official/BasicSR state dicts load with `load_state_dict`; the full ×4 model
has 16,697,987 parameters like the released RRDB_ESRGAN_x4. Like BasicSR, ×2 and ×1 models keep the ×4 body
and fold the input with `pixel_unshuffle` first (4× and 16× the input channels), which keeps their names too.

Range: takes RGB in [0, 1], returns RGB on the same scale with no final activation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sreval.archs.registry import register_model
from sreval.errors import ParameterError

#: Residual scaling β: the paper scales each residual by 0.2 before adding it, which keeps the deep,
#: BN-free network stable to train.
RESIDUAL_SCALE = 0.2


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3×3 convs (each sees all earlier outputs), scaled residual."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, padding=1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, padding=1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, padding=1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, dim=1))))
        out: torch.Tensor = self.conv5(torch.cat(feats, dim=1))
        return x + RESIDUAL_SCALE * out


class RRDB(nn.Module):
    """Residual in Residual Dense Block: three RDBs in sequence, itself wrapped in a scaled residual."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + RESIDUAL_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))
        return out


class RRDBNet(nn.Module):
    """ESRGAN generator; `num_block`/`num_feat`/`num_grow_ch` as in BasicSR, `scale` ∈ {1, 2, 4}."""

    def __init__(
        self,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        in_ch: int = 3,
        out_ch: int = 3,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ParameterError("scale", f"scale {scale} is not supported by RRDBNet; allowed: 1, 2, 4")
        self.scale = scale
        fold = 4 // scale  # pixel_unshuffle factor so the fixed ×4 tail yields `scale`
        self.conv_first = nn.Conv2d(in_ch * fold * fold, num_feat, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        # Nearest-neighbour resize + conv instead of transposed conv / sub-pixel: avoids checkerboard artefacts.
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.conv_last = nn.Conv2d(num_feat, out_ch, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] → (N, 3, scale·H, scale·W); H, W divisible by 4/scale."""
        fold = 4 // self.scale
        if fold > 1:
            x = F.pixel_unshuffle(x, fold)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out: torch.Tensor = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out


@register_model("rrdbnet")
def rrdbnet(scale: int = 4, num_feat: int = 64, num_block: int = 23, num_grow_ch: int = 32) -> RRDBNet:
    """RRDBNet as released with ESRGAN (23 RRDBs, 64 features, growth 32, ×4 by default)."""
    return RRDBNet(scale=scale, num_feat=num_feat, num_block=num_block, num_grow_ch=num_grow_ch)

"""The official ESRGAN generator as its authors wrote it, for tests that cannot have the real files: two
independent implementations (the 2019 `RRDBNet_arch` module names, and the first release's flattened
`nn.Sequential`), written here from the published structure without importing sreval's RRDBNet, and stand-in
files saved from them with random weights; and the zoo side of a stand-in (an asset pinned to a stand-in file, a
small external entry).

Nothing made from these is ESRGAN: the weights are random, and the tests that use them say so.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from sreval import assets


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2)


class ResidualDenseBlock_5C(nn.Module):  # the authors' class name
    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = _lrelu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5: torch.Tensor = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class OriginalRRDB(nn.Module):
    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.RDB1 = ResidualDenseBlock_5C(nf, gc)
        self.RDB2 = ResidualDenseBlock_5C(nf, gc)
        self.RDB3 = ResidualDenseBlock_5C(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.RDB3(self.RDB2(self.RDB1(x)))
        return out * 0.2 + x


class OriginalRRDBNet(nn.Module):
    """The module names of xinntao/ESRGAN's RRDBNet_arch.py (the layout of the released files)."""

    def __init__(self, nb: int, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*(OriginalRRDB(nf, gc) for _ in range(nb)))
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.lrelu = _lrelu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        fea = self.lrelu(self.upconv1(F.interpolate(fea, scale_factor=2, mode="nearest")))
        fea = self.lrelu(self.upconv2(F.interpolate(fea, scale_factor=2, mode="nearest")))
        out: torch.Tensor = self.conv_last(self.lrelu(self.HRconv(fea)))
        return out


# --- The first release: one flattened nn.Sequential ---------------------------------------------------------


class _Shortcut(nn.Module):
    def __init__(self, sub: nn.Module) -> None:
        super().__init__()
        self.sub = sub

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.sub(x)
        return out


class _SequentialRDB(nn.Module):
    """Each conv inside its own Sequential (conv, act), the last one without act: keys `convj.0.weight`."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        for j in range(1, 6):
            conv = nn.Conv2d(nf + (j - 1) * gc, gc if j < 5 else nf, 3, 1, 1)
            setattr(self, f"conv{j}", nn.Sequential(conv, _lrelu()) if j < 5 else nn.Sequential(conv))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for j in range(1, 6):
            feats.append(getattr(self, f"conv{j}")(torch.cat(feats, 1)))
        return feats[-1] * 0.2 + x


class _SequentialRRDB(nn.Module):
    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.RDB1, self.RDB2, self.RDB3 = (_SequentialRDB(nf, gc) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.RDB3(self.RDB2(self.RDB1(x)))
        return out * 0.2 + x


class SequentialRRDBNet(nn.Module):
    """The first release's RRDB_Net: conv, shortcut(RRDBs…, conv), (upsample, conv, act) ×2, conv, act, conv."""

    def __init__(self, nb: int, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        trunk = nn.Sequential(*(_SequentialRRDB(nf, gc) for _ in range(nb)), nn.Conv2d(nf, nf, 3, 1, 1))
        self.model = nn.Sequential(
            nn.Conv2d(3, nf, 3, 1, 1),
            _Shortcut(trunk),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(nf, nf, 3, 1, 1),
            _lrelu(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(nf, nf, 3, 1, 1),
            _lrelu(),
            nn.Conv2d(nf, nf, 3, 1, 1),
            _lrelu(),
            nn.Conv2d(nf, 3, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x)
        return out


SMALL = {"nb": 2, "nf": 16, "gc": 8}
#: the same network in sreval's arch_args
SMALL_ARGS = {"num_block": 2, "num_feat": 16, "num_grow_ch": 8}


def original(layout: str, seed: int, **sizes: int) -> nn.Module:
    """An authors'-structure network (`esrgan` or `sequential` layout) with random weights."""
    torch.manual_seed(seed)
    cls = OriginalRRDBNet if layout == "esrgan" else SequentialRRDBNet
    return cls(**{**SMALL, **sizes}).eval()


#: the convs outside the trunk, in order from input to output, per layout
_PATH_CONVS = {
    "esrgan": ("conv_first", "upconv1", "upconv2", "HRconv", "conv_last"),
    "sequential": ("model.0", "model.3", "model.6", "model.8", "model.10"),
}


def make_image_like(net: nn.Module, layout: str, noise: float = 0.02) -> nn.Module:
    """Random weights whose output is still an image: the convs outside the trunk pass the input's three channels
    through (identity centre taps plus noise), and the trunk adds a small random perturbation. Such a network
    is roughly nearest-neighbour ×4 with texture of its own, so NIQE and PSNR are defined on its output."""
    modules = dict(net.named_modules())
    with torch.no_grad():
        for name in _PATH_CONVS[layout]:
            conv = modules[name]
            assert isinstance(conv, nn.Conv2d)
            conv.weight.mul_(noise)
            assert conv.bias is not None
            conv.bias.zero_()
            for c in range(min(conv.in_channels, conv.out_channels)):
                conv.weight[c, c, 1, 1] += 1.0
        trunk = "trunk_conv" if layout == "esrgan" else "model.1.sub." + str(len(modules["model.1.sub"]) - 1)
        trunk_conv = modules[trunk]
        assert isinstance(trunk_conv, nn.Conv2d)
        trunk_conv.weight.mul_(0.1)
    return net


def save_standin(
    path: Path, layout: str, seed: int, image_like: bool = False, legacy: bool = False, **sizes: int
) -> nn.Module:
    """`path` := the state dict of `original(layout, seed)` as the authors saved theirs (torch.save); with
    `image_like`, weights made by `make_image_like`; with `legacy`, in the pre-zip pickle format of PyTorch
    before 1.6, which is how files saved in 2018 are stored."""
    net = original(layout, seed, **sizes)
    if image_like:
        make_image_like(net, layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    return net


def pin_standin(monkeypatch: pytest.MonkeyPatch, asset: str, path: Path) -> None:
    """Make the catalogue's asset `asset` the stand-in file at `path` (its hash and size pinned)."""
    data = path.read_bytes()
    pinned = dataclasses.replace(
        assets.ASSETS[asset], sha256=hashlib.sha256(data).hexdigest(), size=len(data), git_blob=None, urls=()
    )
    monkeypatch.setitem(assets.ASSETS, asset, pinned)


def external_entry(root: Path, name: str, asset: str) -> None:
    """A zoo entry like the built-in ones but with the stand-ins' small arch_args (23 blocks are too slow here)."""
    folder = root / name
    folder.mkdir(parents=True)
    config = {
        "name": name,
        "architecture": "rrdbnet",
        "arch_args": {"scale": 4, **SMALL_ARGS},
        "scale": 4,
        "recipe": None,
        "weights": {"status": "external", "asset": asset, "loader": "esrgan-pth"},
        "description": f"stand-in for {asset} (random weights)",
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))

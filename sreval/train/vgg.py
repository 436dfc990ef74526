"""A frozen VGG19 feature extractor for the perceptual and texture losses, reading torchvision's ImageNet weights
without torchvision.

The stack is VGG19's `features` (Simonyan & Zisserman 2015, configuration E): five blocks of 2, 2, 4, 4, 4
conv3×3 (padding 1) + ReLU with 64, 128, 256, 512, 512 channels, each block closed by a 2×2 max-pool. The
modules sit at the same indices as in torchvision's `vgg19().features`, so the state-dict keys are torchvision's
`features.{i}.weight` / `features.{i}.bias` for the convolutions i = 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25,
28, 30, 32, 34 (ReLU at i + 1, pools at 4, 9, 18, 27, 36).

Layer names (`LAYER_INDEX`): "convB_J" is the J-th convolution of block B *before* its ReLU (ESRGAN, Sec. 3.3:
features before activation), "reluB_J" the same *after* the ReLU (SRGAN's φ_i,j, "obtained by the j-th
convolution (after activation) before the i-th maxpooling layer", Sec. 2.2), "poolB" the output of block B's
max-pool (EnhanceNet's pool2 / pool5). The stack is cut after the deepest requested layer: the perceptual loss
on relu2_2 runs 9 of the 37 modules.

Weights: the asset "vgg19" (`sreval.assets`), i.e. torchvision's `vgg19-dcbb9e9d.pth`, found in an explicit path,
SREVAL_ASSETS, sreval's asset cache or torchvision's own cache, and verified by its SHA-256 prefix. The file is a
plain state dict of the whole classifier; only the `features.*` entries are used (`classifier.*` is ignored), and
every one of them must be present with torchvision's shape. A missing file is downloaded on first use from the
catalogue's URL and verified before use, unless SREVAL_OFFLINE=1.

Stand-in weights (tests): a file that does not match the checksum is refused — the only way to use one is an
explicit path together with `allow_unverified=True`, which logs a warning and sets `weights_verified = False` on
the module. Anything computed with such weights is not a VGG19 loss and must not be reported as one; a trainer
checks `weights_verified` before it labels results.

Input: RGB in [0, 1], (N, 3, H, W); the ImageNet mean/std normalisation that torchvision's weights were trained
with is applied inside. The parameters are frozen and the module stays in eval mode, but gradients flow to the
input, which is what a loss needs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from sreval import assets
from sreval.errors import SrevalError

log = logging.getLogger(__name__)

#: Convolutions per block and their output channels (VGG19 = configuration E).
BLOCK_DEPTHS = (2, 2, 4, 4, 4)
BLOCK_CHANNELS = (64, 128, 256, 512, 512)

#: torchvision's ImageNet statistics (RGB, on the [0, 1] scale), the normalisation its VGG19 weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_table() -> tuple[dict[str, int], dict[str, int], dict[int, tuple[int, int]]]:
    """Name → module index, name → spatial stride w.r.t. the input, conv index → (out, in) channels."""
    index: dict[str, int] = {}
    stride: dict[str, int] = {}
    convs: dict[int, tuple[int, int]] = {}
    i, in_ch = 0, 3
    for block, (depth, out_ch) in enumerate(zip(BLOCK_DEPTHS, BLOCK_CHANNELS, strict=True), start=1):
        for j in range(1, depth + 1):
            index[f"conv{block}_{j}"], index[f"relu{block}_{j}"] = i, i + 1
            stride[f"conv{block}_{j}"] = stride[f"relu{block}_{j}"] = 2 ** (block - 1)
            convs[i] = (out_ch, in_ch)
            in_ch = out_ch
            i += 2
        index[f"pool{block}"], stride[f"pool{block}"] = i, 2**block
        i += 1
    return index, stride, convs


LAYER_INDEX, LAYER_STRIDE, CONV_CHANNELS = _layer_table()
POOL_INDICES = frozenset(LAYER_INDEX[f"pool{block}"] for block in range(1, len(BLOCK_DEPTHS) + 1))
#: Number of modules in VGG19's `features` (16 convs + 16 ReLUs + 5 pools).
NUM_MODULES = 37


def expected_feature_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision's `features.*` keys of vgg19 and their shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (out_ch, in_ch) in CONV_CHANNELS.items():
        shapes[f"features.{i}.weight"] = (out_ch, in_ch, 3, 3)
        shapes[f"features.{i}.bias"] = (out_ch,)
    return shapes


def build_vgg19_features(num_modules: int = NUM_MODULES, device: torch.device | str | None = None) -> nn.Sequential:
    """The first `num_modules` modules of VGG19's `features`, randomly initialised, at torchvision's indices.

    device="meta" allocates nothing, for modules whose weights are assigned from a file right after.
    """
    modules: list[nn.Module] = []
    for i in range(num_modules):
        if i in CONV_CHANNELS:
            out_ch, in_ch = CONV_CHANNELS[i]
            modules.append(nn.Conv2d(in_ch, out_ch, 3, padding=1, device=device))
        elif i in POOL_INDICES:
            modules.append(nn.MaxPool2d(2, 2))
        else:
            # Not in-place: the conv output just before it may be a requested (pre-activation) feature.
            modules.append(nn.ReLU(inplace=False))
    return nn.Sequential(*modules)


def load_vgg19_features_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The `features.*` tensors of a torchvision-format VGG19 file, checked key by key against torchvision's shapes.

    `classifier.*` (and any other non-`features.` entry) is ignored: the losses never use the classifier.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated download, an HTML page, a pickle with code in it, ...
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise SrevalError(f"{path} is not a readable PyTorch state dict ({type(err).__name__}: {first_line})") from err
    if not isinstance(state, Mapping):
        raise SrevalError(f"{path} holds a {type(state).__name__}, not a state dict like torchvision's vgg19 file")
    features = {k: v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    expected = expected_feature_shapes()
    missing = sorted(set(expected) - set(features), key=_key_order)
    unexpected = sorted(set(features) - set(expected), key=_key_order)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected)} (a VGG with batch norm, or not VGG19?)")
        raise SrevalError(f"{path} is not torchvision's VGG19: {'; '.join(parts)}")
    wrong = [
        f"{k} has shape {tuple(features[k].shape)}, expected {shape}"
        for k, shape in sorted(expected.items(), key=lambda item: _key_order(item[0]))
        if not isinstance(features[k], torch.Tensor) or tuple(features[k].shape) != shape
    ]
    if wrong:
        raise SrevalError(f"{path} is not torchvision's VGG19: {'; '.join(wrong)}")
    return features


def _key_order(key: str) -> tuple[int, str]:
    """features.10.bias after features.2.weight (numeric module order, for readable messages)."""
    parts = key.split(".")
    return (int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else -1, key)


def resolve_vgg19_weights(
    weights_path: str | os.PathLike[str] | None = None, *, allow_unverified: bool = False
) -> tuple[Path, bool]:
    """(file, verified): the VGG19 weights file and whether its checksum is torchvision's.

    Normally the file goes through `assets.resolve("vgg19", weights_path)`: a missing file is `AssetMissing`
    (naming vgg19-dcbb9e9d.pth and where to put it), a checksum mismatch is an error. `allow_unverified=True` is for
    stand-in weights in tests: it needs an explicit path, uses the file whatever its checksum and warns.
    """
    if not allow_unverified:
        return assets.resolve("vgg19", weights_path), True
    if weights_path is None:
        raise SrevalError(
            "allow_unverified=True needs an explicit weights_path: a searched-for file is always verified"
        )
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise assets.AssetMissing(f"{path} (given for asset vgg19) does not exist")
    expected = assets.get_asset("vgg19").sha256
    digest = assets.sha256_of(path)
    if expected is not None and digest.startswith(expected):
        return path, True
    log.warning(
        "using UNVERIFIED VGG19 weights %s (sha256 %s…, expected %s…): these are not torchvision's ImageNet weights "
        "and nothing computed with them may be reported as a VGG loss",
        path,
        digest[:8],
        expected,
    )
    return path, False


class VGGFeatures(nn.Module):
    """Named VGG19 feature maps of an RGB image in [0, 1]; frozen, eval mode, gradients flow to the input."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        layers: Sequence[str],
        weights_path: str | os.PathLike[str] | None = None,
        *,
        allow_unverified: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(layers, str):
            layers = [layers]
        unknown = [name for name in layers if name not in LAYER_INDEX]
        if unknown or not layers:
            raise SrevalError(
                f"unknown VGG19 layer(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"known: {', '.join(LAYER_INDEX)}"
            )
        self.layers: tuple[str, ...] = tuple(dict.fromkeys(layers))  # requested order, duplicates dropped
        self.weights_file, self.weights_verified = resolve_vgg19_weights(
            weights_path, allow_unverified=allow_unverified
        )
        depth = max(LAYER_INDEX[name] for name in self.layers) + 1
        # Built on the meta device and given the file's tensors (assign=True): no throw-away random init of
        # 20 M parameters. float32 whatever the file stores; .to() converts later if wanted.
        self.features = build_vgg19_features(depth, device="meta")
        state = load_vgg19_features_state(self.weights_file)
        self.features.load_state_dict(
            {k.removeprefix("features."): v.float() for k, v in state.items() if int(k.split(".")[1]) < depth},
            assign=True,
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._wanted = {LAYER_INDEX[name]: name for name in self.layers}
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always eval: the extractor is a fixed measurement, not a trained part (a parent's .train() ignores it)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) RGB in [0, 1] → {layer name: feature map}, in the requested order."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise SrevalError(f"VGG19 features need an (N, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
        h = (x - self.mean) / self.std
        found: dict[str, torch.Tensor] = {}
        for i, module in enumerate(self.features):
            h = module(h)
            if i in self._wanted:
                found[self._wanted[i]] = h
        return {name: found[name] for name in self.layers}

"""Training losses for the ×4 recipes (SRGAN, ESRGAN, EnhanceNet-PAT): pixel, total variation, VGG19 perceptual,
and EnhanceNet texture losses (the adversarial ones are in `sreval.train.adversarial`; the table of the terms a
recipe may weight is `sreval.train.loss_terms`).

Every reduction is a mean (over batch, channels and positions), as in the public reimplementations; where a paper
writes a sum, the docstring says what that changes.

Recipes — the constants at the end of the module:

* SRGAN (Ledig et al., CVPR 2017): l^SR = l_X + 10⁻³·l_Gen (Eq. 3), l_Gen = −log D(G(I_LR)) (Eq. 6).
  l_X is the pixel MSE (SRResNet-/SRGAN-MSE) or the VGG loss of Eq. 5 on φ2,2 or φ5,4, i.e. relu2_2 / relu5_4
  *after* activation. Sec. 3.2: "we used VGG losses, rescaled by a factor of 1/12.75 to obtain VGG losses of a
  scale that is comparable to the MSE loss. This is equivalent to multiplying Eq. 5 with a rescaling factor of
  ≈ 0.006" — so both feature maps are multiplied by 1/12.75 before the squared error, which scales the loss by
  1/12.75² ≈ 0.00615. Two caveats: Eq. 5 averages over positions but sums over channels (the mean here is Eq. 5
  / C), and SRGAN's VGG19 was not torchvision's (nor fed ImageNet-normalised [0, 1] inputs, as far as the paper
  says), so the constant is the paper's but the feature magnitudes it was chosen for are not reproduced exactly.
* ESRGAN (Wang et al., ECCVW 2018, Sec. 3.2–3.3, 4.1): L_G = L_percep + λ·L_G^Ra + η·L_1 with λ = 5·10⁻³,
  η = 10⁻²; L_percep is the L1 distance of conv5_4 features *before* activation, weight 1 (the authors' BasicSR
  config train_ESRGAN_x4.yml: `conv5_4` "before relu", criterion l1, perceptual_weight 1, ImageNet
  normalisation of [0, 1] inputs — exactly `VGGFeatures`). L_1 is the pixel L1.
* EnhanceNet-PAT (Sajjadi et al., ICCV 2017, Sec. 4.2): L_P on pool2 and pool5 (MSE), L_T (texture, below),
  L_A (standard GAN). The per-term weights are in the paper's supplementary material, Table 2, which could not be
  consulted when this was written; the values used are those two independent reimplementations quote from it
  (tensorpack examples/SuperResolution/enet-pat.py, "see table 2 from appendix", and a TF2 reimplementation):
  L_P: pool2 2·10⁻¹, pool5 2·10⁻²; L_T: conv1.1 3·10⁻⁷, conv2.1 10⁻⁶, conv3.1 10⁻⁶; L_A: 2. They are not
  confirmed against the supplementary itself. The same sources quote "we normalized feature activations to have a
  mean of one" for L_P and L_T and implement it by dividing each image's feature map by its mean (`normalize`).
  Those weights were chosen for the authors' VGG19 features, not torchvision's, so they set the scale only
  approximately here (tensorpack, for one, feeds a Caffe-converted VGG19 mean-subtracted [0, 255] inputs).

Texture loss (EnhanceNet Sec. 4.2.3): L_T = ‖G(φ(I_est)) − G(φ(I_HR))‖², G(F) = F·Fᵀ, "computed patch-wise during
training", with 16×16 pixel patches found best. Here: each feature map is cut into non-overlapping patches, the
Gram matrix of a patch is the un-normalised sum over its positions of the outer product of feature vectors (C×C),
and a layer's loss is the mean over patches and Gram entries of the squared difference; the layers are then summed
with their weights. The patch is given in *image* pixels (`patch_grid="image"`, default): on a layer with stride s
it is patch/s feature positions (16 px = 16, 8, 4 positions on conv1.1, conv2.1, conv3.1), so every layer
describes the same 16×16 image region. tensorpack instead cuts 16×16 positions on every layer's own grid
(`patch_grid="feature"`). The paper's conv1.1 / conv2.1 / conv3.1 are taken after their ReLU (relu1_1, …), as in
Gatys et al.'s texture model and the reimplementations.

Total variation: not part of any of the three published recipes (SRGAN's Eq. 3, ESRGAN's L_G and ENet-PAT have no
TV term); provided as an optional regulariser. Anisotropic form: the mean over horizontally adjacent pixel pairs of
|Δ| (Δ² for kind="l2") plus the same mean over vertically adjacent pairs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sreval.errors import SrevalError
from sreval.train.vgg import LAYER_INDEX, LAYER_STRIDE, VGGFeatures

Criterion = Literal["mse", "l1"]
PatchGrid = Literal["image", "feature"]
SrganVggVariant = Literal["vgg22", "vgg54"]

#: Floor for the mean used by `normalize` (an all-zero feature map, e.g. a black patch after ReLU, stays finite).
_NORMALIZE_EPS = 1e-6


def _distance(kind: Criterion, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(a, b)
    if kind == "l1":
        return F.l1_loss(a, b)
    raise SrevalError(f"unknown criterion {kind!r}; choose mse or l1")


def _check_criterion(kind: str) -> None:
    if kind not in ("mse", "l1"):
        raise SrevalError(f"unknown criterion {kind!r}; choose mse or l1")


class PixelLoss(nn.Module):
    """Pixel MSE or L1 between SR and HR (mean over all elements)."""

    def __init__(self, kind: Criterion = "mse") -> None:
        super().__init__()
        _check_criterion(kind)
        self.kind: Criterion = kind

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return _distance(self.kind, sr, hr)


class TotalVariationLoss(nn.Module):
    """mean |x[…, i, j+1] − x[…, i, j]| + mean |x[…, i+1, j] − x[…, i, j]| (squares for kind="l2")."""

    def __init__(self, kind: Literal["l1", "l2"] = "l1") -> None:
        super().__init__()
        if kind not in ("l1", "l2"):
            raise SrevalError(f"unknown total variation kind {kind!r}; choose l1 or l2")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = x[..., :, 1:] - x[..., :, :-1]
        dy = x[..., 1:, :] - x[..., :-1, :]
        if self.kind == "l1":
            return dx.abs().mean() + dy.abs().mean()
        return dx.square().mean() + dy.square().mean()


def vgg_feature_pair(
    vgg: VGGFeatures, sr: torch.Tensor, hr: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """VGG features of SR (with autograd) and HR (without: the target needs no gradient, this saves its graph).

    Compute them once and pass them to several losses' `from_features` when the losses share one `VGGFeatures`
    (EnhanceNet-PAT's perceptual and texture terms).
    """
    sr_features = vgg(sr)
    with torch.no_grad():
        hr_features = vgg(hr)
    return sr_features, hr_features


def _mean_normalize(f: torch.Tensor) -> torch.Tensor:
    """Each image's feature map divided by its own mean over (C, H, W), so that it has a mean of one."""
    return f / f.mean(dim=(1, 2, 3), keepdim=True).clamp_min(_NORMALIZE_EPS)


def _layer_weights(layers: str | Mapping[str, float]) -> dict[str, float]:
    weights = {layers: 1.0} if isinstance(layers, str) else {str(k): float(v) for k, v in layers.items()}
    unknown = [name for name in weights if name not in LAYER_INDEX]
    if unknown or not weights:
        raise SrevalError(
            f"unknown VGG19 layer(s) {', '.join(map(repr, unknown)) or '(none given)'}; known: {', '.join(LAYER_INDEX)}"
        )
    return weights


def _check_normalizable(weights: Mapping[str, float], normalize: bool) -> None:
    # A mean of one only makes sense for non-negative maps; a pre-activation mean can be ≤ 0.
    pre_activation = [name for name in weights if name.startswith("conv")]
    if normalize and pre_activation:
        raise SrevalError(
            f"normalize=True needs non-negative features (relu*/pool* layers), not {', '.join(pre_activation)}"
        )


def _own_or_shared_vgg(
    layers: Mapping[str, float],
    vgg: VGGFeatures | None,
    weights_path: str | os.PathLike[str] | None,
    allow_unverified: bool,
) -> VGGFeatures:
    if vgg is None:
        return VGGFeatures(list(layers), weights_path, allow_unverified=allow_unverified)
    absent = [name for name in layers if name not in vgg.layers]
    if absent:
        raise SrevalError(
            f"the shared VGGFeatures does not compute {', '.join(absent)} (it has {', '.join(vgg.layers)})"
        )
    return vgg


class PerceptualLoss(nn.Module):
    """Σ_l w_l · criterion(s·φ_l(SR), s·φ_l(HR)) over VGG19 layers l (names as in `sreval.train.vgg`).

    `layers` is one layer name (weight 1) or {name: weight}; `feature_scale` s is SRGAN's 1/12.75; `normalize`
    divides each image's feature map by its mean first (EnhanceNet). Pass `vgg` to share one extractor between
    losses; otherwise the weights are resolved as in `VGGFeatures` (verified unless `allow_unverified`).
    """

    def __init__(
        self,
        layers: str | Mapping[str, float],
        weights_path: str | os.PathLike[str] | None = None,
        *,
        criterion: Criterion = "mse",
        feature_scale: float = 1.0,
        normalize: bool = False,
        allow_unverified: bool = False,
        vgg: VGGFeatures | None = None,
    ) -> None:
        super().__init__()
        _check_criterion(criterion)
        self.layer_weights = _layer_weights(layers)
        _check_normalizable(self.layer_weights, normalize)
        self.criterion: Criterion = criterion
        self.feature_scale = float(feature_scale)
        self.normalize = normalize
        self.vgg = _own_or_shared_vgg(self.layer_weights, vgg, weights_path, allow_unverified)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """SR and HR: (N, 3, H, W) RGB in [0, 1]; gradients reach SR only."""
        return self.from_features(*vgg_feature_pair(self.vgg, sr, hr))

    def from_features(self, sr: Mapping[str, torch.Tensor], hr: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = torch.zeros((), device=next(iter(sr.values())).device)
        for name, weight in self.layer_weights.items():
            a, b = sr[name], hr[name]
            if self.normalize:
                a, b = _mean_normalize(a), _mean_normalize(b)
            total = total + weight * _distance(self.criterion, self.feature_scale * a, self.feature_scale * b)
        return total


def patch_gram(f: torch.Tensor, patch: int) -> torch.Tensor:
    """Gram matrices F·Fᵀ of the non-overlapping patch×patch patches of (N, C, H, W) → (N·H/p·W/p, C, C).

    Un-normalised: entry (c, d) is the sum over the patch's positions of f_c · f_d. H and W must be multiples of
    `patch` (a partial patch would have a Gram matrix on a different scale).
    """
    n, c, h, w = f.shape
    if patch < 1 or h % patch or w % patch:
        raise SrevalError(f"a {h}×{w} feature map cannot be cut into {patch}×{patch} patches")
    cols = f.reshape(n, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
    cols = cols.reshape(-1, c, patch * patch)
    return cols @ cols.transpose(1, 2)


class TextureLoss(nn.Module):
    """EnhanceNet's texture loss: Σ_l w_l · mean over patches of ‖G(φ_l(SR)) − G(φ_l(HR))‖² / C².

    Defaults are the EnhanceNet-PAT layers and weights (see the module docstring for their source), 16 px patches
    in image pixels, and mean-normalised activations.
    """

    def __init__(
        self,
        layers: str | Mapping[str, float] | None = None,
        weights_path: str | os.PathLike[str] | None = None,
        *,
        patch: int = 16,
        patch_grid: PatchGrid = "image",
        normalize: bool = True,
        allow_unverified: bool = False,
        vgg: VGGFeatures | None = None,
    ) -> None:
        super().__init__()
        self.layer_weights = _layer_weights(ENHANCENET_TEXTURE_LAYERS if layers is None else layers)
        _check_normalizable(self.layer_weights, normalize)
        if patch_grid not in ("image", "feature"):
            raise SrevalError(f"unknown patch_grid {patch_grid!r}; choose image or feature")
        self.patch = patch
        self.patch_grid: PatchGrid = patch_grid
        self.normalize = normalize
        self.feature_patch = {name: self._feature_patch(name) for name in self.layer_weights}
        self.vgg = _own_or_shared_vgg(self.layer_weights, vgg, weights_path, allow_unverified)

    def _feature_patch(self, name: str) -> int:
        if self.patch_grid == "feature":
            return self.patch
        stride = LAYER_STRIDE[name]
        if self.patch % stride:
            raise SrevalError(
                f"a {self.patch} px patch is not a whole number of positions on {name} (stride {stride} px)"
            )
        return self.patch // stride

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """SR and HR: (N, 3, H, W) RGB in [0, 1], H and W multiples of the patch; gradients reach SR only."""
        return self.from_features(*vgg_feature_pair(self.vgg, sr, hr))

    def from_features(self, sr: Mapping[str, torch.Tensor], hr: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = torch.zeros((), device=next(iter(sr.values())).device)
        for name, weight in self.layer_weights.items():
            # float32: a Gram entry sums p² products and is then squared, too much range for fp16/bf16.
            a, b = sr[name].float(), hr[name].float()
            if self.normalize:
                a, b = _mean_normalize(a), _mean_normalize(b)
            p = self.feature_patch[name]
            if a.shape[-2] % p or a.shape[-1] % p:
                raise SrevalError(
                    f"{name} is {a.shape[-2]}×{a.shape[-1]}, not a multiple of the {p}×{p} patch "
                    f"({self.patch} px on the {self.patch_grid} grid): crop the images to a multiple of the patch"
                )
            total = total + weight * (patch_gram(a, p) - patch_gram(b, p)).square().mean()
        return total


# --- Recipes ----------------------------------------------------------------------------------------------------

#: SRGAN Sec. 3.2: VGG features multiplied by 1/12.75 (the loss by 1/12.75² ≈ 0.006).
SRGAN_VGG_FEATURE_SCALE = 1 / 12.75
#: SRGAN Eq. 3: l^SR = l_X + 10⁻³ l_Gen.
SRGAN_TERMS = {"content": 1.0, "adversarial": 1e-3}
#: SRGAN's VGG22 / VGG54 content losses: φ2,2 / φ5,4 after activation.
SRGAN_VGG_LAYERS = {"vgg22": "relu2_2", "vgg54": "relu5_4"}

#: ESRGAN Sec. 4.1: L_G = L_percep + λ L_G^Ra + η L_1, λ = 5·10⁻³, η = 10⁻².
ESRGAN_TERMS = {"perceptual": 1.0, "adversarial": 5e-3, "pixel": 1e-2}
ESRGAN_PERCEPTUAL_LAYER = "conv5_4"

#: EnhanceNet-PAT, supplementary Table 2 as quoted by the reimplementations (not confirmed here, see above).
ENHANCENET_PERCEPTUAL_LAYERS = {"pool2": 2e-1, "pool5": 2e-2}
ENHANCENET_TEXTURE_LAYERS = {"relu1_1": 3e-7, "relu2_1": 1e-6, "relu3_1": 1e-6}
ENHANCENET_TEXTURE_PATCH = 16
#: The per-layer weights live inside the perceptual and texture modules; the adversarial weight is 2.
ENHANCENET_PAT_TERMS = {"perceptual": 1.0, "texture": 1.0, "adversarial": 2.0}


def srgan_vgg_loss(
    variant: SrganVggVariant = "vgg54",
    weights_path: str | os.PathLike[str] | None = None,
    *,
    allow_unverified: bool = False,
) -> PerceptualLoss:
    """SRGAN's VGG content loss: MSE of φ2,2 or φ5,4 (after ReLU), features scaled by 1/12.75."""
    if variant not in SRGAN_VGG_LAYERS:
        raise SrevalError(f"unknown SRGAN VGG loss {variant!r}; choose {', '.join(SRGAN_VGG_LAYERS)}")
    return PerceptualLoss(
        SRGAN_VGG_LAYERS[variant],
        weights_path,
        criterion="mse",
        feature_scale=SRGAN_VGG_FEATURE_SCALE,
        allow_unverified=allow_unverified,
    )


def esrgan_perceptual_loss(
    weights_path: str | os.PathLike[str] | None = None, *, allow_unverified: bool = False
) -> PerceptualLoss:
    """ESRGAN's perceptual loss: L1 of conv5_4 features before activation."""
    return PerceptualLoss(ESRGAN_PERCEPTUAL_LAYER, weights_path, criterion="l1", allow_unverified=allow_unverified)


def enhancenet_losses(
    weights_path: str | os.PathLike[str] | None = None, *, allow_unverified: bool = False
) -> tuple[PerceptualLoss, TextureLoss]:
    """EnhanceNet-PAT's L_P and L_T sharing one VGG19 (pool2/pool5 and relu1_1/relu2_1/relu3_1, mean-normalised).

    Call each loss directly, or compute `vgg_feature_pair(perceptual.vgg, sr, hr)` once and give it to both
    `from_features` methods to run VGG19 once per image.
    """
    vgg = VGGFeatures(
        [*ENHANCENET_TEXTURE_LAYERS, *ENHANCENET_PERCEPTUAL_LAYERS], weights_path, allow_unverified=allow_unverified
    )
    perceptual = PerceptualLoss(ENHANCENET_PERCEPTUAL_LAYERS, criterion="mse", normalize=True, vgg=vgg)
    texture = TextureLoss(ENHANCENET_TEXTURE_LAYERS, patch=ENHANCENET_TEXTURE_PATCH, normalize=True, vgg=vgg)
    return perceptual, texture

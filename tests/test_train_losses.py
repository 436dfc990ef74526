"""Training losses and the VGG19 feature extractor (sreval.train.losses, sreval.train.vgg).

torchvision's VGG19 ImageNet weights are not obtainable here: every VGG test runs on a *stand-in* file that the
test writes (random tensors under torchvision's exact `features.*` keys and shapes). The stand-in can only be used
through an explicit path with `allow_unverified=True`; the numbers it gives check the plumbing (layers, scaling,
gradients, Gram patches), they are not VGG losses and are never reported as such.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sreval import assets
from sreval.errors import SrevalError
from sreval.train import losses
from sreval.train.vgg import LAYER_INDEX, VGGFeatures, load_vgg19_features_state

# torchvision's vgg19 state dict, written out: (key, shape). The convolutions of `features` ...
TORCHVISION_VGG19_FEATURES = [
    ("features.0.weight", (64, 3, 3, 3)), ("features.0.bias", (64,)),
    ("features.2.weight", (64, 64, 3, 3)), ("features.2.bias", (64,)),
    ("features.5.weight", (128, 64, 3, 3)), ("features.5.bias", (128,)),
    ("features.7.weight", (128, 128, 3, 3)), ("features.7.bias", (128,)),
    ("features.10.weight", (256, 128, 3, 3)), ("features.10.bias", (256,)),
    ("features.12.weight", (256, 256, 3, 3)), ("features.12.bias", (256,)),
    ("features.14.weight", (256, 256, 3, 3)), ("features.14.bias", (256,)),
    ("features.16.weight", (256, 256, 3, 3)), ("features.16.bias", (256,)),
    ("features.19.weight", (512, 256, 3, 3)), ("features.19.bias", (512,)),
    ("features.21.weight", (512, 512, 3, 3)), ("features.21.bias", (512,)),
    ("features.23.weight", (512, 512, 3, 3)), ("features.23.bias", (512,)),
    ("features.25.weight", (512, 512, 3, 3)), ("features.25.bias", (512,)),
    ("features.28.weight", (512, 512, 3, 3)), ("features.28.bias", (512,)),
    ("features.30.weight", (512, 512, 3, 3)), ("features.30.bias", (512,)),
    ("features.32.weight", (512, 512, 3, 3)), ("features.32.bias", (512,)),
    ("features.34.weight", (512, 512, 3, 3)), ("features.34.bias", (512,)),
]  # fmt: skip
# ... and of `classifier` (real shapes; the stand-in stores 1-element tensors, the loader must ignore them).
TORCHVISION_VGG19_CLASSIFIER = [
    ("classifier.0.weight", (4096, 25088)), ("classifier.0.bias", (4096,)),
    ("classifier.3.weight", (4096, 4096)), ("classifier.3.bias", (4096,)),
    ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,)),
]  # fmt: skip


def standin_state() -> dict[str, torch.Tensor]:
    """Random VGG19 weights, He-scaled so that activations neither vanish nor explode through 16 layers."""
    gen = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for key, shape in TORCHVISION_VGG19_FEATURES:
        if key.endswith("weight"):
            fan_in = shape[1] * 9
            state[key] = torch.randn(shape, generator=gen) * math.sqrt(2 / fan_in)
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.01
    for key, _ in TORCHVISION_VGG19_CLASSIFIER:
        state[key] = torch.zeros(1)
    return state


@pytest.fixture(scope="session")
def standin_vgg19(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("standin") / "vgg19-dcbb9e9d.pth"
    torch.save(standin_state(), path)
    return path


pytestmark = pytest.mark.usefixtures("isolated")


def images(n: int = 1, size: int = 32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=gen), torch.rand(n, 3, size, size, generator=gen)


# --- VGG19 weights: resolution, checksum, loading ---------------------------------------------------------------


def test_layer_names_sit_at_torchvisions_indices() -> None:
    convs = [int(key.split(".")[1]) for key, _ in TORCHVISION_VGG19_FEATURES[::2]]
    assert [LAYER_INDEX[f"conv{b}_{j}"] for b, n in enumerate((2, 2, 4, 4, 4), 1) for j in range(1, n + 1)] == convs
    assert LAYER_INDEX["relu2_2"] == 8 and LAYER_INDEX["relu5_4"] == 35 and LAYER_INDEX["conv5_4"] == 34
    assert [LAYER_INDEX[f"pool{b}"] for b in range(1, 6)] == [4, 9, 18, 27, 36]


def test_missing_weights_name_the_file_and_where_to_put_it(isolated: Path) -> None:
    with pytest.raises(assets.AssetMissing) as caught:
        losses.srgan_vgg_loss("vgg22")
    message = str(caught.value)
    assert "vgg19-dcbb9e9d.pth" in message
    assert str(isolated / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    assert str(isolated / "cache" / "assets") in message and "sreval assets add vgg19 PATH" in message


def test_standin_fails_the_checksum_and_is_usable_only_explicitly_unverified(
    isolated: Path, standin_vgg19: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SrevalError, match="expected dcbb9e9d"):
        VGGFeatures(["relu1_1"], standin_vgg19)
    cached = isolated / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(standin_vgg19.read_bytes())
    with pytest.raises(SrevalError, match="expected dcbb9e9d"):  # found in torchvision's cache, still refused
        VGGFeatures(["relu1_1"])
    with pytest.raises(SrevalError, match="explicit weights_path"):  # never a searched-for unverified file
        VGGFeatures(["relu1_1"], allow_unverified=True)
    with caplog.at_level(logging.WARNING, logger="sreval.train.vgg"):
        vgg = VGGFeatures(["relu1_1"], standin_vgg19, allow_unverified=True)
    assert vgg.weights_verified is False and vgg.weights_file == standin_vgg19
    assert "UNVERIFIED VGG19 weights" in caplog.text


def test_a_file_with_the_known_checksum_is_verified(standin_vgg19: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real file cannot exist here: pretend the stand-in's hash prefix is the known one."""
    asset = assets.get_asset("vgg19")
    prefix = assets.sha256_of(standin_vgg19)[:8]
    monkeypatch.setitem(assets.ASSETS, "vgg19", dataclasses.replace(asset, sha256=prefix))
    assert VGGFeatures(["relu1_1"], standin_vgg19).weights_verified
    assert VGGFeatures(["relu1_1"], standin_vgg19, allow_unverified=True).weights_verified


def test_loader_takes_features_ignores_classifier_and_names_bad_keys(tmp_path: Path, standin_vgg19: Path) -> None:
    state = load_vgg19_features_state(standin_vgg19)
    assert [(k, tuple(v.shape)) for k, v in state.items()] == TORCHVISION_VGG19_FEATURES
    full = standin_state()

    def check(bad: dict[str, torch.Tensor], match: str) -> None:
        path = tmp_path / "bad.pth"
        torch.save(bad, path)
        with pytest.raises(SrevalError, match=match):
            load_vgg19_features_state(path)

    check({k: v for k, v in full.items() if k != "features.21.weight"}, r"missing features\.21\.weight")
    check({**full, "features.16.bias": torch.zeros(128)}, r"features\.16\.bias has shape \(128,\), expected \(256,\)")
    check({**full, "features.1.running_mean": torch.zeros(64)}, r"unexpected features\.1\.running_mean")
    check([1, 2, 3], "not a state dict")  # type: ignore[arg-type]
    (tmp_path / "html.pth").write_text("<html>Not Found</html>")
    with pytest.raises(SrevalError, match="not a readable PyTorch state dict"):
        load_vgg19_features_state(tmp_path / "html.pth")


def test_features_are_truncated_frozen_and_named(standin_vgg19: Path) -> None:
    vgg = VGGFeatures(["relu2_2", "conv1_2"], standin_vgg19, allow_unverified=True)
    assert len(vgg.features) == LAYER_INDEX["relu2_2"] + 1 == 9
    assert all(not p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    x, _ = images()
    out = vgg(x)
    assert list(out) == ["relu2_2", "conv1_2"]
    assert out["conv1_2"].shape == (1, 64, 32, 32) and out["relu2_2"].shape == (1, 128, 16, 16)
    # The first conv sees ImageNet-normalised input with the file's weights.
    state = load_vgg19_features_state(standin_vgg19)
    normalised = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    expected = F.conv2d(normalised, state["features.0.weight"], state["features.0.bias"], padding=1)
    conv1_1 = VGGFeatures(["conv1_1"], standin_vgg19, allow_unverified=True)(x)["conv1_1"]
    torch.testing.assert_close(conv1_1, expected)


def test_before_and_after_activation_differ_exactly_by_the_relu(standin_vgg19: Path) -> None:
    vgg = VGGFeatures(["conv5_4", "relu5_4", "pool5"], standin_vgg19, allow_unverified=True)
    out = vgg(images()[0])
    assert torch.equal(F.relu(out["conv5_4"]), out["relu5_4"])
    assert (out["conv5_4"] < 0).any()  # the pre-activation map really is different
    assert torch.equal(F.max_pool2d(out["relu5_4"], 2), out["pool5"])


# --- Perceptual losses ------------------------------------------------------------------------------------------


def test_feature_scale_scales_the_mse_by_its_square(standin_vgg19: Path) -> None:
    sr, hr = images()
    srgan = losses.srgan_vgg_loss("vgg22", standin_vgg19, allow_unverified=True)
    plain = losses.PerceptualLoss("relu2_2", criterion="mse", vgg=srgan.vgg)
    assert srgan.feature_scale == 1 / 12.75 and srgan.layer_weights == {"relu2_2": 1.0}
    torch.testing.assert_close(srgan(sr, hr), plain(sr, hr) / 12.75**2)
    feats = srgan.vgg(sr)["relu2_2"], srgan.vgg(hr)["relu2_2"]
    torch.testing.assert_close(plain(sr, hr), F.mse_loss(*feats))


def test_esrgan_perceptual_is_l1_before_activation(standin_vgg19: Path) -> None:
    sr, hr = images(size=16)
    loss = losses.esrgan_perceptual_loss(standin_vgg19, allow_unverified=True)
    assert loss.criterion == "l1" and loss.layer_weights == {"conv5_4": 1.0} and loss.feature_scale == 1.0
    a, b = loss.vgg(sr)["conv5_4"], loss.vgg(hr)["conv5_4"]
    torch.testing.assert_close(loss(sr, hr), (a - b).abs().mean())


def test_gradient_reaches_sr_and_not_vgg(standin_vgg19: Path) -> None:
    sr, hr = images(size=16)
    sr.requires_grad_(True)
    loss = losses.srgan_vgg_loss("vgg54", standin_vgg19, allow_unverified=True)
    value = loss(sr, hr)
    value.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.vgg.parameters())
    assert torch.equal(loss(hr, hr), torch.zeros(()))


def test_shared_vgg_gives_the_same_enhancenet_losses(standin_vgg19: Path) -> None:
    perceptual, texture = losses.enhancenet_losses(standin_vgg19, allow_unverified=True)
    assert perceptual.vgg is texture.vgg and len(perceptual.vgg.features) == LAYER_INDEX["pool5"] + 1
    assert perceptual.layer_weights == {"pool2": 0.2, "pool5": 0.02} and perceptual.normalize
    assert texture.layer_weights == {"relu1_1": 3e-7, "relu2_1": 1e-6, "relu3_1": 1e-6}
    assert texture.feature_patch == {"relu1_1": 16, "relu2_1": 8, "relu3_1": 4}
    sr, hr = images(size=32)  # the smallest size with a pool5 output (1×1)
    pair = losses.vgg_feature_pair(perceptual.vgg, sr, hr)
    value = perceptual(sr, hr)
    torch.testing.assert_close(perceptual.from_features(*pair), value)
    torch.testing.assert_close(texture.from_features(*pair), texture(sr, hr))
    # Mean-normalised pool2 and pool5: each image's map has mean one before the MSE.
    a, b = (f["pool2"] / f["pool2"].mean() for f in pair)
    c, d = (f["pool5"] / f["pool5"].mean() for f in pair)
    torch.testing.assert_close(value, 0.2 * F.mse_loss(a, b) + 0.02 * F.mse_loss(c, d))


def test_bad_layers_and_options_are_errors(standin_vgg19: Path) -> None:
    with pytest.raises(SrevalError, match="unknown VGG19 layer"):
        losses.PerceptualLoss("relu6_1", standin_vgg19, allow_unverified=True)
    with pytest.raises(SrevalError, match="non-negative"):
        losses.PerceptualLoss("conv5_4", standin_vgg19, normalize=True, allow_unverified=True)
    vgg = VGGFeatures(["relu1_1"], standin_vgg19, allow_unverified=True)
    with pytest.raises(SrevalError, match="does not compute relu2_2"):
        losses.PerceptualLoss("relu2_2", vgg=vgg)
    with pytest.raises(SrevalError, match="not a whole number of positions on relu3_1"):
        losses.TextureLoss({"relu3_1": 1.0}, patch=6, vgg=vgg)
    with pytest.raises(SrevalError, match="unknown criterion"):
        losses.PixelLoss("huber")  # type: ignore[arg-type]


# --- Pixel and total variation ----------------------------------------------------------------------------------


def test_pixel_losses_match_hand_computed_values() -> None:
    sr = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    hr = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]])
    assert losses.PixelLoss("mse")(sr, hr).item() == pytest.approx((0.25 + 0 + 1 + 0.5625) / 4)
    assert losses.PixelLoss("l1")(sr, hr).item() == pytest.approx((0.5 + 0 + 1 + 0.75) / 4)


def test_total_variation_on_a_hand_made_image() -> None:
    x = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])
    # horizontal pairs: 1, 2, 0, 0 → mean 0.75; vertical pairs: 2, 1, −1 → mean |·| 4/3
    assert losses.TotalVariationLoss("l1")(x).item() == pytest.approx(0.75 + 4 / 3)
    assert losses.TotalVariationLoss("l2")(x).item() == pytest.approx((1 + 4) / 4 + (4 + 1 + 1) / 3)
    assert losses.TotalVariationLoss()(torch.full((2, 3, 5, 5), 0.3)).item() == 0


# --- Texture loss -----------------------------------------------------------------------------------------------


def test_patch_gram_is_per_patch_sum_of_outer_products() -> None:
    f = torch.randn(2, 3, 4, 6)
    grams = losses.patch_gram(f, 2)
    assert grams.shape == (2 * 2 * 3, 3, 3)
    block = f[1, :, 2:4, 4:6].reshape(3, 4)  # image 1, patch row 1, patch column 2
    torch.testing.assert_close(grams[1 * 6 + 1 * 3 + 2], block @ block.T)
    with pytest.raises(SrevalError, match="cannot be cut into 4×4 patches"):
        losses.patch_gram(f, 4)


def _permute_within_patches(f: torch.Tensor, p: int, seed: int) -> torch.Tensor:
    """The same positions shuffled inside every p×p patch (a different shuffle per patch)."""
    gen = torch.Generator().manual_seed(seed)
    out = f.clone()
    for i in range(0, f.shape[-2], p):
        for j in range(0, f.shape[-1], p):
            patch = f[..., i : i + p, j : j + p].reshape(*f.shape[:2], p * p)
            out[..., i : i + p, j : j + p] = patch[..., torch.randperm(p * p, generator=gen)].reshape(
                *f.shape[:2], p, p
            )
    return out


def test_texture_loss_sees_patch_statistics_only(standin_vgg19: Path) -> None:
    vgg = VGGFeatures(["relu1_1", "relu2_1"], standin_vgg19, allow_unverified=True)
    texture = losses.TextureLoss({"relu1_1": 1.0, "relu2_1": 0.5}, patch=8, vgg=vgg)
    sr, hr = images(n=2, size=16)
    feats = vgg(sr)
    assert texture.from_features(feats, feats).item() == 0
    assert texture(sr, sr).item() == 0
    shuffled = {"relu1_1": _permute_within_patches(feats["relu1_1"], 8, 0),
                "relu2_1": _permute_within_patches(feats["relu2_1"], 4, 1)}  # fmt: skip
    torch.testing.assert_close(texture.from_features(feats, shuffled), torch.zeros(()), atol=1e-6, rtol=0)
    # Moving content *across* patches changes the patch statistics.
    rolled = {name: f.roll(shifts=4, dims=-1) for name, f in feats.items()}
    assert texture.from_features(feats, rolled).item() > 0
    assert texture(sr, hr).item() > 0
    # One layer by hand: mean-normalised maps, Gram per 8×8 patch, mean squared difference.
    a, b = (f / f.mean(dim=(1, 2, 3), keepdim=True) for f in (feats["relu1_1"], vgg(hr)["relu1_1"]))
    only = losses.TextureLoss({"relu1_1": 2.0}, patch=8, vgg=vgg)
    expected = 2.0 * (losses.patch_gram(a, 8) - losses.patch_gram(b, 8)).square().mean()
    torch.testing.assert_close(only(sr, hr), expected)


def test_texture_patch_on_the_feature_grid_and_size_errors(standin_vgg19: Path) -> None:
    vgg = VGGFeatures(["relu2_1"], standin_vgg19, allow_unverified=True)
    on_features = losses.TextureLoss({"relu2_1": 1.0}, patch=4, patch_grid="feature", vgg=vgg)
    on_image = losses.TextureLoss({"relu2_1": 1.0}, patch=8, patch_grid="image", vgg=vgg)
    assert on_features.feature_patch == on_image.feature_patch == {"relu2_1": 4}
    sr, hr = images(size=16)
    torch.testing.assert_close(on_features(sr, hr), on_image(sr, hr))
    with pytest.raises(SrevalError, match="not a multiple of the 4×4 patch"):
        on_image(*images(size=20))


def test_texture_gradient_reaches_sr(standin_vgg19: Path) -> None:
    sr, hr = images(size=16)
    sr.requires_grad_(True)
    loss = losses.TextureLoss({"relu1_1": 1.0}, standin_vgg19, allow_unverified=True)
    loss(sr, hr).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0


# --- Recipe constants ---------------------------------------------------------------------------------------


def test_recipe_constants() -> None:
    assert losses.SRGAN_TERMS == {"content": 1.0, "adversarial": 1e-3}
    assert abs(losses.SRGAN_VGG_FEATURE_SCALE**2 - 0.006) < 2e-4  # "≈ 0.006", SRGAN Sec. 3.2
    assert losses.ESRGAN_TERMS == {"perceptual": 1.0, "adversarial": 5e-3, "pixel": 1e-2}
    assert losses.ENHANCENET_PAT_TERMS["adversarial"] == 2.0

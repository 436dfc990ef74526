"""Every registered architecture: forward + backward at tiny size, published parameter counts, registry errors
(models and checkpoint readers), and bad arguments named by their parameter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from sreval.archs import create_model, model_names, register_model, weight_loader, weight_loader_names
from sreval.archs.enhancenet import EnhanceNet
from sreval.archs.enhancenet_official import load_official_state_dict
from sreval.errors import ParameterError, SrevalError

# name → (tiny kwargs, input shape, expected output shape). Discriminators keep their real input size (the
# dense layer is sized for it) and shrink only in width.
TINY: dict[str, tuple[dict[str, Any], tuple[int, ...], tuple[int, ...]]] = {
    "srresnet": ({"num_blocks": 2, "num_feat": 8}, (2, 3, 8, 8), (2, 3, 32, 32)),
    "rrdbnet": ({"num_block": 1, "num_feat": 8, "num_grow_ch": 4}, (2, 3, 8, 8), (2, 3, 32, 32)),
    "enhancenet": ({"num_blocks": 2, "num_feat": 8}, (2, 3, 8, 8), (2, 3, 32, 32)),
    "srgan-discriminator": ({"num_feat": 8}, (2, 3, 96, 96), (2, 1)),
    "esrgan-discriminator": ({"num_feat": 8}, (2, 3, 128, 128), (2, 1)),
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def full_size(name: str) -> nn.Module:
    """The default (paper-size) model on the meta device: shapes only, no memory or init time."""
    with torch.device("meta"):
        return create_model(name)


def test_every_registered_model_has_a_tiny_config() -> None:
    assert sorted(TINY) == model_names()


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_backward_tiny(name: str) -> None:
    kwargs, in_shape, out_shape = TINY[name]
    torch.manual_seed(0)
    model = create_model(name, **kwargs).train()
    out = model(torch.rand(in_shape))
    assert out.shape == out_shape
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.requires_grad
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


def test_srresnet_param_count() -> None:
    # Ledig et al. 2017 give SRResNet as "1.5M" parameters. Exact count with 64 features, 16 blocks, ×4,
    # bias-free convs before BN and per-channel PReLU:
    conv3 = 64 * 64 * 9  # 3×3 conv 64→64, no bias (feeds BN)
    bn, prelu = 2 * 64, 64
    head = 3 * 64 * 81 + 64 + prelu
    blocks = 16 * (2 * (conv3 + bn) + prelu)
    trunk_end = conv3 + bn
    ups = 2 * (64 * 256 * 9 + 256 + prelu)
    tail = 64 * 3 * 81 + 3
    expected = head + blocks + trunk_end + ups + tail
    assert expected == 1_548_547
    assert n_params(full_size("srresnet")) == expected


def test_rrdbnet_param_count_matches_official_esrgan() -> None:
    # Official ESRGAN RRDB_ESRGAN_x4.pth (xinntao/ESRGAN; same net as BasicSR RRDBNet, num_feat 64,
    # num_block 23, num_grow_ch 32) holds 16,697,987 parameters.
    assert n_params(full_size("rrdbnet")) == 16_697_987


def test_rrdbnet_uses_basicsr_state_dict_names() -> None:
    names = set(full_size("rrdbnet").state_dict())
    for key in (
        "conv_first.weight",
        "body.22.rdb3.conv5.bias",
        "conv_body.weight",
        "conv_up1.weight",
        "conv_up2.weight",
        "conv_hr.weight",
        "conv_last.bias",
    ):
        assert key in names


def test_discriminator_param_counts() -> None:
    # SRGAN: conv stack + dense 512·6·6 → 1024 → 1 (the dense layer is 18.9 M of the total).
    convs = (
        3 * 64 * 9
        + 64
        + sum(
            ci * co * 9 + 2 * co
            for ci, co in [(64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
        )
    )
    assert n_params(full_size("srgan-discriminator")) == convs + 512 * 36 * 1024 + 1024 + 1024 + 1
    # ESRGAN / BasicSR VGGStyleDiscriminator(num_in_ch=3, num_feat=64) for 128 px input.
    assert n_params(full_size("esrgan-discriminator")) == 14_499_401
    names = set(full_size("esrgan-discriminator").state_dict())
    assert {"conv0_0.bias", "bn0_1.running_mean", "conv4_1.weight", "linear1.weight", "linear2.bias"} <= names


@pytest.mark.parametrize(("scale", "in_side"), [(1, 8), (2, 8)])
def test_rrdbnet_other_scales(scale: int, in_side: int) -> None:
    model = create_model("rrdbnet", scale=scale, **TINY["rrdbnet"][0])
    assert model(torch.rand(1, 3, in_side, in_side)).shape == (1, 3, scale * in_side, scale * in_side)


def test_srresnet_scale_2() -> None:
    model = create_model("srresnet", scale=2, **TINY["srresnet"][0])
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 3, 16, 16)


def test_enhancenet_is_residual_over_its_upsampler() -> None:
    calls: list[int] = []

    def nearest(x: torch.Tensor, scale: int) -> torch.Tensor:
        calls.append(scale)
        return torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")

    model = EnhanceNet(num_blocks=1, num_feat=8, mean=(0.4, 0.45, 0.5), upsample=nearest)
    nn.init.zeros_(model.conv_last.weight)
    assert model.conv_last.bias is not None
    nn.init.zeros_(model.conv_last.bias)
    x = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(model(x), nearest(x, 4))
    assert calls == [4, 4]


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(SrevalError, match="unknown model 'edsr'") as err:
        create_model("edsr")
    for name in model_names():
        assert name in str(err.value)


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(SrevalError, match="already registered"):
        register_model("srresnet")(lambda: nn.Identity())


BAD_CONFIGS = [
    ("rrdbnet", {"scale": 3}),
    ("srresnet", {"scale": 3}),
    ("enhancenet", {"scale": 3}),
    ("srgan-discriminator", {"input_size": 100}),
    ("esrgan-discriminator", {"input_size": 112}),
]


@pytest.mark.parametrize(("name", "kwargs"), BAD_CONFIGS)
def test_bad_configuration_names_value(name: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(SrevalError, match=str(next(iter(kwargs.values())))):
        create_model(name, **kwargs)
    with pytest.raises(ParameterError) as error:
        create_model(name, **kwargs)
    assert error.value.parameter == next(iter(kwargs)) and "--" not in str(error.value)


def test_unknown_model_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError) as error:
        create_model("edsr")
    assert error.value.parameter == "name"


def test_checkpoint_readers_are_registered_by_importing_archs() -> None:
    assert "enhancenet-pat-tf1" in weight_loader_names()
    state = dict(weight_loader("enhancenet-pat-tf1")(Path(__file__).parent / "data" / "tf1" / "tiny_enhancenet.ckpt"))
    expected, _ = load_official_state_dict(Path(__file__).parent / "data" / "tf1" / "tiny_enhancenet.ckpt")
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in expected)
    with pytest.raises(ParameterError, match="weight loader 'nope' is not registered"):
        weight_loader("nope")


def test_archs_do_not_import_the_zoo() -> None:
    """archs sit below the zoo: importing every network and checkpoint reader loads no zoo module."""
    code = "import sys, sreval.archs; print(sorted(m for m in sys.modules if m.startswith('sreval.zoo')))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_discriminator_rejects_wrong_input_size() -> None:
    model = create_model("srgan-discriminator", num_feat=8)
    with pytest.raises(SrevalError, match="96"):
        model(torch.rand(2, 3, 64, 64))

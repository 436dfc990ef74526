"""The table of loss terms (sreval.train.loss_terms), the weighted sum of terms, and the adversarial losses
(sreval.train.adversarial)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sreval.errors import ParameterError, SrevalError
from sreval.train import adversarial, loss_terms, losses, recipes
from sreval.train.loss_terms import LOSS_TERMS, BuildContext, DiscriminatorView, Objective, StepView
from tests.standin_models import standin_vgg19

# --- The table -----------------------------------------------------------------------------------------------


def test_the_table_says_what_each_term_needs() -> None:
    assert list(LOSS_TERMS) == [
        "mse", "l1", "tv", "vgg22", "vgg54", "vgg54_pre", "enet_perceptual", "texture", "gan", "ragan"
    ]  # fmt: skip
    assert {n for n, t in LOSS_TERMS.items() if t.needs_vgg} == {
        "vgg22", "vgg54", "vgg54_pre", "enet_perceptual", "texture"
    }  # fmt: skip
    assert {n for n, t in LOSS_TERMS.items() if t.needs_discriminator} == {"gan", "ragan"}
    assert LOSS_TERMS["gan"].discriminator_loss is adversarial.gan_discriminator_loss
    assert LOSS_TERMS["ragan"].discriminator_loss is adversarial.ragan_discriminator_loss
    for name, term in LOSS_TERMS.items():
        assert term.name == name and term.summary
        if term.shares_features_with is not None:  # sharing goes both ways
            assert LOSS_TERMS[term.shares_features_with].shares_features_with == name
    with pytest.raises(ParameterError, match="unknown loss term 'nope'") as error:
        loss_terms.loss_term("nope")
    assert error.value.parameter == "losses"


def test_recipes_check_their_terms_against_the_table() -> None:
    base = recipes.get_recipe("srresnet-mse")
    with pytest.raises(ParameterError, match="unknown loss term") as error:
        recipes.with_overrides(base, {"losses": {"perceptualish": 1}})
    assert error.value.parameter == "losses"
    with pytest.raises(ParameterError, match="at most one GAN term"):
        recipes.with_overrides(
            base, {"losses": {"gan": 1, "ragan": 1}, "discriminator": "srgan-discriminator"}
        )
    with pytest.raises(ParameterError, match="degradation must be uint8 or double") as error:
        recipes.with_overrides(base, {"degradation": "bilinear"})
    assert error.value.parameter == "degradation"
    with pytest.raises(ParameterError, match="precision must be bf16 or fp32"):
        recipes.with_overrides(base, {"precision": "fp16"})
    assert recipes.get_recipe("enhancenet-pat").needs_vgg and not base.needs_vgg
    assert recipes.get_recipe("esrgan").gan_term == "ragan" and base.gan_term is None


def test_objective_builds_and_weighs_every_pixel_term() -> None:
    gen = torch.Generator().manual_seed(0)
    sr = torch.rand(2, 3, 8, 8, generator=gen, requires_grad=True)
    hr = torch.rand(2, 3, 8, 8, generator=gen)
    objective = Objective({"mse": 2.0, "l1": 0.5, "tv": 0.1}, BuildContext(torch.device("cpu")))
    assert objective.discriminator_loss is None and not objective.uses_vgg
    total, logged = objective(StepView(sr, hr, DiscriminatorView(None, hr, sr, "fp32")))
    expected = {
        "mse": losses.PixelLoss("mse")(sr, hr),
        "l1": losses.PixelLoss("l1")(sr, hr),
        "tv": losses.TotalVariationLoss()(sr),
    }
    for name, value in expected.items():
        assert torch.equal(logged[name], value.detach())
    assert torch.equal(total, 2.0 * expected["mse"] + 0.5 * expected["l1"] + 0.1 * expected["tv"])


def test_enhancenet_terms_share_one_vgg_and_one_feature_pass(tmp_path: Path) -> None:
    vgg_file = standin_vgg19(tmp_path / "vgg19-dcbb9e9d.pth")
    context = BuildContext(torch.device("cpu"), vgg_file, allow_unverified_vgg=True)
    objective = Objective({"enet_perceptual": 1.0, "texture": 1.0}, context)
    vggs = {id(b.vgg) for b in objective.built.values()}
    assert len(vggs) == 1 and objective.uses_vgg and not objective.vgg_verified
    gen = torch.Generator().manual_seed(1)
    sr, hr = torch.rand(1, 3, 32, 32, generator=gen), torch.rand(1, 3, 32, 32, generator=gen)
    step = StepView(sr, hr, DiscriminatorView(None, hr, sr, "fp32"))
    calls = []
    vgg = objective.built["texture"].vgg
    assert vgg is not None
    vgg.register_forward_hook(lambda *_: calls.append(1))
    _, logged = objective(step)
    assert len(calls) == 2  # SR and HR once each, for both terms
    perceptual, texture = losses.enhancenet_losses(vgg_file, allow_unverified=True)
    torch.testing.assert_close(logged["enet_perceptual"], perceptual(sr, hr))
    torch.testing.assert_close(logged["texture"], texture(sr, hr))


def test_a_gan_term_without_a_discriminator_is_an_error() -> None:
    sr = hr = torch.zeros(1, 3, 4, 4)
    objective = Objective({"gan": 1.0}, BuildContext(torch.device("cpu")))
    assert objective.discriminator_loss is adversarial.gan_discriminator_loss
    with pytest.raises(SrevalError, match="no discriminator"):
        objective(StepView(sr, hr, DiscriminatorView(None, hr, sr, "fp32")))


# --- Combining terms -------------------------------------------------------------------------------------------


def test_loss_terms_weight_sum_and_log() -> None:
    terms = loss_terms.LossTerms(losses.ESRGAN_TERMS)
    values = {"perceptual": torch.tensor(2.0, requires_grad=True), "adversarial": torch.tensor(4.0),
              "pixel": torch.tensor(10.0)}  # fmt: skip
    total, logged = terms(values)
    assert total.item() == pytest.approx(2.0 + 5e-3 * 4.0 + 1e-2 * 10.0)
    assert {k: v.item() for k, v in logged.items()} == pytest.approx(
        {"perceptual": 2.0, "adversarial": 4.0, "pixel": 10.0, "total": total.item()}
    )
    assert not logged["perceptual"].requires_grad
    total.backward()  # type: ignore[no-untyped-call]
    assert values["perceptual"].grad is not None
    with pytest.raises(SrevalError, match="missing pixel, unweighted texture"):
        terms({"perceptual": values["perceptual"], "adversarial": values["adversarial"], "texture": torch.tensor(1.0)})


# --- Adversarial ------------------------------------------------------------------------------------------------


def test_standard_gan_losses_hand_computed() -> None:
    zeros = torch.zeros(4, 1)
    assert adversarial.gan_generator_loss(zeros).item() == pytest.approx(math.log(2))
    assert adversarial.gan_discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sig = torch.sigmoid
    expected_g = -torch.log(sig(fake)).mean()
    expected_d = -torch.log(sig(real)).mean() - torch.log(1 - sig(fake)).mean()
    torch.testing.assert_close(adversarial.gan_generator_loss(fake), expected_g)
    torch.testing.assert_close(adversarial.gan_discriminator_loss(real, fake), expected_d)


def test_ragan_losses_hand_computed_and_symmetric() -> None:
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])  # E C(x_r) = 2, E C(x_f) = 1
    # D: σ(real − 1) = σ([0, 2]) should be 1, σ(fake − 2) = σ([−2, 0]) should be 0.
    d = (math.log(2) + math.log(1 + math.exp(-2))) / 2 / 2 + (math.log(1 + math.exp(-2)) + math.log(2)) / 2 / 2
    g = (math.log(2) + math.log(1 + math.exp(2))) / 2 / 2 + (math.log(1 + math.exp(2)) + math.log(2)) / 2 / 2
    assert adversarial.ragan_discriminator_loss(real, fake).item() == pytest.approx(d)
    assert adversarial.ragan_generator_loss(real, fake).item() == pytest.approx(g)
    gen = torch.Generator().manual_seed(3)
    r, f = torch.randn(5, 1, generator=gen), torch.randn(5, 1, generator=gen)
    # ESRGAN Eq. 2 is Eq. 1 with the roles of real and fake exchanged.
    assert torch.equal(adversarial.ragan_generator_loss(r, f), adversarial.ragan_discriminator_loss(f, r))
    assert torch.equal(adversarial.ragan_discriminator_loss(r, f), adversarial.ragan_generator_loss(f, r))


def test_ragan_generator_gradient_flows_through_both_terms() -> None:
    real = torch.tensor([1.0, -1.0])
    fake = torch.tensor([0.3, 0.1], requires_grad=True)
    adversarial.ragan_generator_loss(real, fake).backward()  # type: ignore[no-untyped-call]
    assert fake.grad is not None and torch.all(fake.grad < 0)  # raising C(x_f) lowers the generator loss


def test_adversarial_losses_are_finite_for_large_logits() -> None:
    big, small = torch.full((3,), 100.0), torch.full((3,), -100.0)
    worst = [
        (adversarial.gan_generator_loss(small), 100.0),
        (adversarial.gan_discriminator_loss(small, big), 200.0),
        (adversarial.ragan_generator_loss(big, small), 200.0),
        (adversarial.ragan_discriminator_loss(small, big), 200.0),
    ]
    for value, expected in worst:
        assert torch.isfinite(value) and value.item() == pytest.approx(expected)
    assert adversarial.gan_discriminator_loss(big, small).item() == pytest.approx(0.0, abs=1e-30)
    assert adversarial.ragan_discriminator_loss(big, small).item() == pytest.approx(0.0, abs=1e-30)
    logits = torch.tensor([100.0, -100.0], requires_grad=True)
    adversarial.ragan_generator_loss(logits[:1], logits[1:]).backward()  # type: ignore[no-untyped-call]
    assert logits.grad is not None and torch.isfinite(logits.grad).all()

"""The loss terms a recipe may weight, in one table: for each its name, how it is built, whether it needs VGG19
features or a discriminator, and which term it shares its features with. Recipes check their terms against the
table; the loop builds the recipe's terms from it and applies them every step. Adding a loss is one `LossTerm`
entry (and its function in `sreval.train.losses` or `sreval.train.adversarial`).

A built term is a function of the step (`StepView`: SR, HR, the discriminator's logits, VGG features), so that
what several terms need is computed once per step: the discriminator's logits for every GAN term, and the VGG19
features of one shared extractor (EnhanceNet-PAT's perceptual and texture terms) for every term on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sreval.errors import ParameterError, SrevalError
from sreval.train import adversarial as A
from sreval.train import losses as L
from sreval.train.devices import Precision, autocast
from sreval.train.vgg import VGGFeatures


class DiscriminatorView:
    """The discriminator's logits on this step's real and generated images, computed once and only when a GAN
    term asks: real without gradient, fake with gradient to the generator (the discriminator stays fixed)."""

    def __init__(
        self, discriminator: nn.Module | None, hr: torch.Tensor, sr: torch.Tensor, precision: Precision
    ) -> None:
        self.discriminator, self.hr, self.sr, self.precision = discriminator, hr, sr, precision
        self._logits: tuple[torch.Tensor, torch.Tensor] | None = None

    def logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._logits is None:
            if self.discriminator is None:
                raise SrevalError("a GAN term is weighted but there is no discriminator")
            params = list(self.discriminator.parameters())
            for p in params:
                p.requires_grad_(False)
            try:
                with autocast(self.precision, self.sr.device):
                    real = self.discriminator(self.hr).float().detach()
                    fake = self.discriminator(self.sr).float()
            finally:
                for p in params:
                    p.requires_grad_(True)
            self._logits = (real, fake)
        return self._logits


class StepView:
    """What the loss terms of one step see: SR (with gradient), HR, the discriminator's logits and the VGG
    features of each extractor, each computed at most once."""

    def __init__(self, sr: torch.Tensor, hr: torch.Tensor, discriminator: DiscriminatorView) -> None:
        self.sr, self.hr, self.discriminator = sr, hr, discriminator
        self._features: dict[int, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = {}

    def features(self, vgg: VGGFeatures) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        key = id(vgg)
        if key not in self._features:
            self._features[key] = L.vgg_feature_pair(vgg, self.sr, self.hr)
        return self._features[key]


@dataclass(frozen=True)
class BuildContext:
    """What building a term may use. `shared` holds what terms that share features build once (e.g. the VGG19
    of EnhanceNet's two terms), keyed by the name of the term that builds it."""

    device: torch.device
    vgg_weights: str | os.PathLike[str] | None = None
    allow_unverified_vgg: bool = False
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltTerm:
    compute: Callable[[StepView], torch.Tensor]
    vgg: VGGFeatures | None = None  # the extractor it runs, so a run can say whether its VGG19 was verified


@dataclass(frozen=True)
class LossTerm:
    name: str
    summary: str
    build: Callable[[BuildContext], BuiltTerm]
    needs_vgg: bool = False
    #: The discriminator's own loss when the term is adversarial (the term then needs a discriminator).
    discriminator_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    #: A term computed from the same VGG19 features as this one (built together, features computed once).
    shares_features_with: str | None = None

    @property
    def needs_discriminator(self) -> bool:
        return self.discriminator_loss is not None


def _on_pair(module: nn.Module, context: BuildContext) -> BuiltTerm:
    module.to(context.device)
    return BuiltTerm(lambda step: module(step.sr, step.hr))


def _on_features(module: L.PerceptualLoss | L.TextureLoss, context: BuildContext) -> BuiltTerm:
    module.to(context.device)
    return BuiltTerm(lambda step: module.from_features(*step.features(module.vgg)), module.vgg)


def _total_variation(context: BuildContext) -> BuiltTerm:
    module = L.TotalVariationLoss().to(context.device)
    return BuiltTerm(lambda step: module(step.sr))


def _srgan_vgg(variant: L.SrganVggVariant) -> Callable[[BuildContext], BuiltTerm]:
    def build(context: BuildContext) -> BuiltTerm:
        module = L.srgan_vgg_loss(variant, context.vgg_weights, allow_unverified=context.allow_unverified_vgg)
        return _on_features(module, context)

    return build


def _esrgan_perceptual(context: BuildContext) -> BuiltTerm:
    module = L.esrgan_perceptual_loss(context.vgg_weights, allow_unverified=context.allow_unverified_vgg)
    return _on_features(module, context)


def _enhancenet(which: int) -> Callable[[BuildContext], BuiltTerm]:
    """EnhanceNet-PAT's perceptual (0) or texture (1) term, both on one VGG19 built by whichever comes first."""

    def build(context: BuildContext) -> BuiltTerm:
        pair = context.shared.get("enet_perceptual")
        if pair is None:
            pair = L.enhancenet_losses(context.vgg_weights, allow_unverified=context.allow_unverified_vgg)
            context.shared["enet_perceptual"] = pair
        module: L.PerceptualLoss | L.TextureLoss = pair[which]
        return _on_features(module, context)

    return build


def _gan(context: BuildContext) -> BuiltTerm:
    return BuiltTerm(lambda step: A.gan_generator_loss(step.discriminator.logits()[1]))


def _ragan(context: BuildContext) -> BuiltTerm:
    return BuiltTerm(lambda step: A.ragan_generator_loss(*step.discriminator.logits()))


LOSS_TERMS: dict[str, LossTerm] = {
    t.name: t
    for t in (
        LossTerm("mse", "pixel MSE on [0, 1]", lambda c: _on_pair(L.PixelLoss("mse"), c)),
        LossTerm("l1", "pixel L1 on [0, 1]", lambda c: _on_pair(L.PixelLoss("l1"), c)),
        LossTerm("tv", "total variation", _total_variation),
        LossTerm("vgg22", "SRGAN VGG2,2: MSE of relu2_2 features / 12.75", _srgan_vgg("vgg22"), needs_vgg=True),
        LossTerm("vgg54", "SRGAN VGG5,4: MSE of relu5_4 features / 12.75", _srgan_vgg("vgg54"), needs_vgg=True),
        LossTerm(
            "vgg54_pre", "ESRGAN: L1 of conv5_4 features before activation", _esrgan_perceptual, needs_vgg=True
        ),
        LossTerm(
            "enet_perceptual",
            "EnhanceNet L_P: MSE on pool2 and pool5",
            _enhancenet(0),
            needs_vgg=True,
            shares_features_with="texture",
        ),
        LossTerm(
            "texture",
            "EnhanceNet L_T: Gram matrices on 16×16 patches",
            _enhancenet(1),
            needs_vgg=True,
            shares_features_with="enet_perceptual",
        ),
        LossTerm("gan", "standard GAN generator term (SRGAN)", _gan, discriminator_loss=A.gan_discriminator_loss),
        LossTerm(
            "ragan",
            "relativistic average GAN generator term (ESRGAN)",
            _ragan,
            discriminator_loss=A.ragan_discriminator_loss,
        ),
    )
}


def loss_term(name: str) -> LossTerm:
    try:
        return LOSS_TERMS[name]
    except KeyError:
        raise ParameterError("losses", f"unknown loss term {name!r}; known: {', '.join(LOSS_TERMS)}") from None


class LossTerms:
    """Σ weight·value over named terms; returns the total and every unweighted value (detached) for logging.

    The names given must be exactly the weighted ones, so that a recipe cannot silently drop or add a term.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        if not weights:
            raise SrevalError("LossTerms needs at least one weighted term")
        if "total" in weights:
            raise SrevalError("'total' is reserved for the sum of the terms")
        self.weights = {str(k): float(v) for k, v in weights.items()}

    def __call__(self, values: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        missing = [k for k in self.weights if k not in values]
        extra = [k for k in values if k not in self.weights]
        if missing or extra:
            raise SrevalError(
                f"loss terms do not match the weights: missing {', '.join(missing) or 'none'}, "
                f"unweighted {', '.join(extra) or 'none'} (weighted terms: {', '.join(self.weights)})"
            )
        device = next(iter(values.values())).device
        total = sum((self.weights[k] * values[k] for k in self.weights), torch.zeros((), device=device))
        logged = {k: values[k].detach() for k in self.weights}
        logged["total"] = total.detach()
        return total, logged


class Objective:
    """A recipe's weighted loss terms, built from the table: `objective(step)` → (total, unweighted values for the
    log); `discriminator_loss` is the adversarial term's own discriminator loss (None without one)."""

    def __init__(self, weights: Mapping[str, float], context: BuildContext) -> None:
        self.terms = {name: loss_term(name) for name in weights}
        self.built = {name: term.build(context) for name, term in self.terms.items()}
        self.weigh = LossTerms(weights)
        adversarial = [t for t in self.terms.values() if t.discriminator_loss is not None]
        self.discriminator_loss = adversarial[0].discriminator_loss if adversarial else None
        vggs = [b.vgg for b in self.built.values() if b.vgg is not None]
        self.uses_vgg = bool(vggs)
        #: False when a VGG-based term runs on stand-in weights (tests): such a run must never become a model.
        self.vgg_verified = all(v.weights_verified for v in vggs)

    def __call__(self, step: StepView) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.weigh({name: built.compute(step) for name, built in self.built.items()})

"""Training recipes: the papers' settings as dataclasses, overridable from YAML or `key=value` items.

A recipe names the generator, the loss terms and their weights, the optimiser and schedule, and the data
settings. Numbers come from the papers; where a paper does not state something, the field's comment says what
sreval chose and why.

- SRGAN (Ledig et al., CVPR 2017, Sec. 3.2): 96×96 HR crops, batch 16, Adam β1 = 0.9. SRResNet: lr 1e-4 for
  10⁶ steps. SRGAN variants start from the MSE SRResNet and train 10⁵ steps at 1e-4, then 10⁵ at 1e-5, with the
  adversarial term weighted 1e-3, alternating one generator and one discriminator update. Images are scaled
  to [0, 1] at the input and [−1, 1] at the output, with the MSE computed on [−1, 1]: sreval's networks work on
  [0, 1], where the same MSE is 4× smaller, so the recipes that mix MSE with other terms weight it 4 to keep the
  paper's balance (Adam makes the scale irrelevant when MSE is the only term). VGG features are rescaled by
  1/12.75 (in the loss module).
- EnhanceNet (Sajjadi et al., ICCV 2017): ENet-E is trained with the pixel MSE only; ENet-PAT with the
  perceptual (pool2, pool5), texture (Gram matrices on 16×16 patches) and adversarial (weight 2) terms, with the
  per-layer weights inside the loss modules (see sreval.train.losses for their source). Crop 96 as the other
  SRGAN-era models (sreval's choice: the paper states none); step count not stated in the paper: sreval uses
  SRGAN's schedule.
- ESRGAN (Wang et al., ECCV 2018 workshops, Sec. 4.1): 128×128 HR crops, batch 16, Adam β = (0.9, 0.999).
  PSNR stage: L1, lr 2e-4 halved every 2·10⁵ steps (the paper gives no total; sreval uses 10⁶ steps, as
  BasicSR's PSNR-oriented setting). GAN stage from the PSNR model: L_percep (VGG19 conv5_4 before activation,
  L1) + λ·L_G^Ra (λ = 5e-3) + η·L1 (η = 1e-2), lr 1e-4 halved at 50k, 100k, 200k, 300k of 400k steps.

`Recipe.scaled_to(N)` scales a recipe down (or up): every milestone is scaled by N / steps so the schedule keeps
its shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from sreval.errors import ParameterError, SrevalError
from sreval.matlab.imresize import VARIANTS, Variant
from sreval.train.devices import PRECISIONS, Precision
from sreval.train.loss_terms import LOSS_TERMS


@dataclass
class Recipe:
    name: str
    generator: str  # a name in sreval.archs.model_names()
    generator_args: dict[str, Any] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=lambda: {"mse": 1.0})  # names in sreval.train.loss_terms
    discriminator: str | None = None  # needed when a GAN term is weighted
    discriminator_args: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # zoo model or run folder the generator starts from
    scale: int = 4
    crop: int = 96  # HR crop side
    batch: int = 16  # global batch (split across DDP ranks)
    steps: int = 1_000_000
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    milestones: list[int] = field(default_factory=list)  # steps at which lr is multiplied by `gamma`
    gamma: float = 0.5
    d_lr: float | None = None  # discriminator lr (default: lr, same schedule)
    degradation: Variant = "uint8"  # MATLAB bicubic variant for the on-the-fly LR
    seed: int = 0
    workers: int = 2
    precision: Precision = "bf16"  # bf16 autocast on GPUs that support it; fp32 elsewhere (CPU bf16 is slow)
    channels_last: bool = True
    compile: bool = False
    log_every: int = 100
    checkpoint_every: int = 5000
    validate_every: int = 10000
    validation_sets: list[str] = field(default_factory=lambda: ["set5", "set14"])

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Every field within what the loop can run; a `ParameterError` names the field."""
        unknown = sorted(set(self.losses) - set(LOSS_TERMS))
        if unknown:
            raise ParameterError(
                "losses", f"recipe {self.name}: unknown loss term(s) {unknown}; known: {', '.join(LOSS_TERMS)}"
            )
        if not self.losses:
            raise ParameterError("losses", f"recipe {self.name}: no loss term")
        adversarial = [t for t in self.losses if LOSS_TERMS[t].needs_discriminator]
        if adversarial and self.discriminator is None:
            raise ParameterError("discriminator", f"recipe {self.name}: a GAN term needs a discriminator")
        if len(adversarial) > 1:  # one discriminator update per step, with one adversarial loss
            raise ParameterError("losses", f"recipe {self.name}: at most one GAN term, got {', '.join(adversarial)}")
        for name, value, low in (("crop", self.crop, self.scale), ("batch", self.batch, 1), ("steps", self.steps, 1)):
            if not isinstance(value, int) or value < low:
                raise ParameterError(name, f"recipe {self.name}: {name} must be an integer ≥ {low}, got {value!r}")
        if self.crop % self.scale:
            raise ParameterError(
                "crop", f"recipe {self.name}: crop {self.crop} is not a multiple of the scale {self.scale}"
            )
        if self.precision not in PRECISIONS:
            raise ParameterError(
                "precision", f"recipe {self.name}: precision must be {' or '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.degradation not in VARIANTS:
            raise ParameterError(
                "degradation",
                f"recipe {self.name}: degradation must be {' or '.join(VARIANTS)}, got {self.degradation!r}",
            )
        for every in ("log_every", "checkpoint_every", "validate_every"):
            if not isinstance(getattr(self, every), int) or getattr(self, every) < 0:
                raise ParameterError(every, f"recipe {self.name}: {every} must be an integer ≥ 0 (0 = never)")

    @property
    def needs_vgg(self) -> bool:
        return any(LOSS_TERMS[t].needs_vgg for t in self.losses)

    @property
    def gan_term(self) -> str | None:
        """The adversarial term, whose presence means a discriminator is trained too."""
        return next((t for t in self.losses if LOSS_TERMS[t].needs_discriminator), None)

    def scaled_to(self, steps: int) -> Recipe:
        """The same schedule over `steps` steps: milestones scaled proportionally (at least step 1 apart)."""
        if steps < 1:
            raise ParameterError("steps", f"steps must be ≥ 1, got {steps}")
        factor = steps / self.steps
        milestones = sorted({max(1, round(m * factor)) for m in self.milestones})
        return dataclasses.replace(self, steps=steps, milestones=milestones)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out


def _srgan(name: str, losses: dict[str, float]) -> Recipe:
    return Recipe(
        name,
        "srresnet",
        losses=losses,
        discriminator="srgan-discriminator",
        init_from="srresnet-mse",
        steps=200_000,
        lr=1e-4,
        betas=(0.9, 0.999),
        milestones=[100_000],
        gamma=0.1,
    )


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("srresnet-mse", "srresnet", losses={"mse": 1.0}, steps=1_000_000, lr=1e-4),
        Recipe("srresnet-vgg22", "srresnet", losses={"vgg22": 1.0}, steps=1_000_000, lr=1e-4),
        _srgan("srgan-mse", {"mse": 4.0, "gan": 1e-3}),
        _srgan("srgan-vgg22", {"vgg22": 1.0, "gan": 1e-3}),
        _srgan("srgan-vgg54", {"vgg54": 1.0, "gan": 1e-3}),
        Recipe("enhancenet-e", "enhancenet", losses={"mse": 1.0}, steps=1_000_000, lr=1e-4),
        Recipe(
            "enhancenet-pat",
            "enhancenet",
            losses={"enet_perceptual": 1.0, "texture": 1.0, "gan": 2.0},
            discriminator="srgan-discriminator",
            init_from="enhancenet-e",
            steps=200_000,
            lr=1e-4,
        ),
        Recipe(
            "esrgan-psnr",
            "rrdbnet",
            losses={"l1": 1.0},
            crop=128,
            steps=1_000_000,
            lr=2e-4,
            milestones=[200_000, 400_000, 600_000, 800_000],
            gamma=0.5,
            degradation="double",
        ),
        Recipe(
            "esrgan",
            "rrdbnet",
            losses={"vgg54_pre": 1.0, "ragan": 5e-3, "l1": 1e-2},
            discriminator="esrgan-discriminator",
            init_from="esrgan-psnr",
            crop=128,
            steps=400_000,
            lr=1e-4,
            milestones=[50_000, 100_000, 200_000, 300_000],
            gamma=0.5,
            degradation="double",
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    try:
        return dataclasses.replace(RECIPES[name])
    except KeyError:
        raise ParameterError("name", f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None


def _coerce(recipe: Recipe, key: str, value: Any) -> Any:
    current = getattr(recipe, key)
    if key == "betas":
        if not (isinstance(value, list | tuple) and len(value) == 2):
            raise ParameterError("betas", f"betas must be two numbers, got {value!r}")
        return (float(value[0]), float(value[1]))
    if isinstance(current, bool) and not isinstance(value, bool):
        raise ParameterError(key, f"{key} must be true or false, got {value!r}")
    if isinstance(current, float) or (current is None and key == "d_lr"):
        # YAML 1.1 reads `2e-4` (no dot) as a string; accept any number spelling for float fields.
        if isinstance(value, bool):
            raise ParameterError(key, f"{key} must be a number, got {value!r}")
        try:
            return None if value is None and current is None else float(value)
        except (TypeError, ValueError):
            raise ParameterError(key, f"{key} must be a number, got {value!r}") from None
    if isinstance(current, dict) and not isinstance(value, dict):
        raise ParameterError(key, f"{key} must be a mapping, got {value!r}")
    if isinstance(current, list) and not isinstance(value, list):
        raise ParameterError(key, f"{key} must be a list, got {value!r}")
    return value


def with_overrides(recipe: Recipe, overrides: dict[str, Any], where: str = "overrides") -> Recipe:
    """`recipe` with fields replaced; unknown keys are errors naming the key and where it came from."""
    names = {f.name for f in fields(Recipe)} - {"name"}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in names:
            raise ParameterError(key, f"{where}: unknown recipe key {key!r}; known: {', '.join(sorted(names))}")
        changes[key] = _coerce(recipe, key, value)
    try:
        return dataclasses.replace(recipe, **changes)
    except TypeError as e:
        raise SrevalError(f"{where}: {e}") from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """`key=value` override items (the CLI's `--set`), values parsed as YAML (`lr=2e-4`, `milestones=[10,20]`,
    `losses={l1: 1}`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError("items", f"an override must be KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ParameterError("items", f"override {item!r}: value is not valid YAML ({e})") from None
    return out


def load_overrides(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SrevalError(f"cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise SrevalError(f"{path} is not valid YAML: {e}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SrevalError(f"{path}: expected a mapping of recipe keys, got {type(raw).__name__}")
    return raw

"""A zoo entry: the folder `ROOT/NAME/` and what its `config.yaml` says, checked field by field.

The folder holds

- `config.yaml`: architecture (a name in `sreval.archs.model_names()`), its factory arguments, scale, the
  training recipe, and the state of the weights (see `parse_config` for every field);
- `model.safetensors` when the weights are trained here (safetensors, never pickle: loading a zoo model must
  not be able to run code), checked against the sha256 in the config on every load;
- `README.md`: the model card (training data, steps, time, the metrics sreval measured).

Weights that cannot exist yet are entries too, with a status saying why (`not-trained`, `not-obtainable`), so
that `sreval zoo list` shows what is missing instead of hiding it. `external` weights are a file sreval may
not redistribute (e.g. the official EnhanceNet-PAT checkpoint): it is resolved as an `sreval.assets` asset and
read, unmodified, by a checkpoint reader that `sreval.archs` registers by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sreval.archs import model_names
from sreval.errors import ParameterError, SrevalError

CONFIG = "config.yaml"
CARD = "README.md"
WEIGHTS = "model.safetensors"

WeightStatus = Literal["trained", "not-trained", "not-obtainable", "external"]
STATUSES: tuple[WeightStatus, ...] = ("trained", "not-trained", "not-obtainable", "external")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = {
    "name",
    "architecture",
    "arch_args",
    "scale",
    "recipe",
    "weights",
    "description",
    "interpolation",
    "pipeline",
}
#: How a model is run as a benchmark method. `protocol`: on sreval's MATLAB-bicubic LR, output clamped and rounded
#: like MATLAB's im2uint8. `enhancenet-official`: the official EnhanceNet script's own LR (PIL antialias) and
#: rounding (see sreval.archs.enhancenet_official).
PIPELINES = ("protocol", "enhancenet-official")
_REQUIRED_TOP = ("name", "architecture", "scale", "weights", "description")
# weights fields each status requires; every other weights field is an error for that status
_WEIGHT_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # status → (required, optional)
    "trained": ({"file", "sha256"}, set()),
    "not-trained": ({"reason"}, set()),
    "not-obtainable": ({"reason"}, set()),
    "external": ({"asset", "loader"}, {"reason"}),
}


@dataclass(frozen=True)
class Weights:
    status: WeightStatus
    file: str | None = None
    sha256: str | None = None
    asset: str | None = None
    loader: str | None = None
    reason: str | None = None

    def to_config(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class Interpolation:
    """Provenance of an interpolated model: θ = (1−α)·θ_a + α·θ_b."""

    a: str
    b: str
    alpha: float


@dataclass(frozen=True)
class ZooEntry:
    name: str
    architecture: str
    scale: int
    weights: Weights
    description: str
    folder: Path
    arch_args: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    interpolation: Interpolation | None = None
    pipeline: str = "protocol"

    @property
    def has_weights(self) -> bool:
        return self.weights.status in ("trained", "external")

    @property
    def weights_path(self) -> Path | None:
        """The safetensors file of a trained entry (None for the other statuses)."""
        return self.folder / self.weights.file if self.weights.file else None

    @property
    def card_path(self) -> Path:
        return self.folder / CARD

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG

    def model_kwargs(self) -> dict[str, Any]:
        """Factory arguments: `arch_args`, with the entry's `scale` added when they do not name it."""
        return {"scale": self.scale, **self.arch_args}

    def describe_arch(self) -> str:
        """`architecture(arg=value, …)`, as messages name what the weights must fit."""
        return f"{self.architecture}({', '.join(f'{k}={v!r}' for k, v in self.model_kwargs().items())})"

    def to_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": self.name,
            "architecture": self.architecture,
            "arch_args": dict(self.arch_args),
            "scale": self.scale,
            "recipe": self.recipe,
            "weights": self.weights.to_config(),
            "description": self.description,
        }
        if self.interpolation is not None:
            config["interpolation"] = vars(self.interpolation).copy()
        if self.pipeline != "protocol":
            config["pipeline"] = self.pipeline
        return config


def check_name(name: str, parameter: str = "name") -> str:
    """A zoo name is a folder name: letters, digits, `.`, `_`, `+`, `-`, not starting with punctuation."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ParameterError(
            parameter,
            f"invalid zoo model name {name!r}: use letters, digits, '.', '_', '+' and '-' (at most 100 characters, "
            f"starting with a letter or digit)",
        )
    return name


def _expect(value: Any, kind: type | tuple[type, ...], what: str, where: Path) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise SrevalError(f"{where}: {what} must be {names}, got {value!r}")
    return value


def _parse_weights(raw: Any, where: Path) -> Weights:
    raw = _expect(raw, dict, "weights", where)
    status = raw.get("status")
    if status not in _WEIGHT_FIELDS:
        raise SrevalError(f"{where}: weights.status must be one of {', '.join(STATUSES)}, got {status!r}")
    required, optional = _WEIGHT_FIELDS[status]
    for key in raw:
        if key != "status" and key not in required | optional:
            allowed = ", ".join(sorted(required | optional))
            raise SrevalError(f"{where}: weights.{key} is not allowed with status {status} (allowed: {allowed})")
    for key in sorted(required):
        if raw.get(key) in (None, ""):
            raise SrevalError(f"{where}: weights.{key} is required with status {status}")
    values = {k: _expect(v, str, f"weights.{k}", where) for k, v in raw.items() if v is not None}
    if status == "trained":
        if Path(values["file"]).name != values["file"] or values["file"] in (".", ".."):
            raise SrevalError(
                f"{where}: weights.file must be a file name inside the entry's folder, got {values['file']!r}"
            )
        if not _SHA256.match(values["sha256"]):
            raise SrevalError(f"{where}: weights.sha256 must be 64 lowercase hex digits, got {values['sha256']!r}")
    return Weights(**values)


def _parse_interpolation(raw: Any, where: Path) -> Interpolation:
    interp = _expect(raw, dict, "interpolation", where)
    if set(interp) != {"a", "b", "alpha"}:
        raise SrevalError(f"{where}: interpolation must have exactly the keys a, b, alpha, got {sorted(interp)}")
    return Interpolation(
        _expect(interp["a"], str, "interpolation.a", where),
        _expect(interp["b"], str, "interpolation.b", where),
        float(_expect(interp["alpha"], (int, float), "interpolation.alpha", where)),
    )


def parse_config(raw: Any, folder: Path) -> ZooEntry:
    """Validates a loaded config.yaml. Every field:

    name (= the folder's name), architecture (a registered model), arch_args (factory keyword arguments,
    optional), scale (int; must agree with arch_args.scale when both are given), recipe (training recipe name
    or null), description (one line), weights (status trained | not-trained | not-obtainable | external, with
    file + sha256 when trained, reason when not-trained / not-obtainable, asset + loader (+ optional reason)
    when external), interpolation (optional: a, b, alpha of an interpolated model), pipeline (optional, one of
    `PIPELINES`, default protocol).
    """
    where = folder / CONFIG
    raw = _expect(raw, dict, "the config", where)
    for key in raw:
        if key not in _TOP_KEYS:
            raise SrevalError(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    for key in _REQUIRED_TOP:
        if raw.get(key) is None:
            raise SrevalError(f"{where}: {key} is required")
    name = check_name(_expect(raw["name"], str, "name", where))
    if name != folder.name:
        raise SrevalError(f"{where}: name {name!r} differs from its folder's name {folder.name!r}")
    architecture = _expect(raw["architecture"], str, "architecture", where)
    if architecture not in model_names():
        raise SrevalError(f"{where}: unknown architecture {architecture!r}; known: {', '.join(model_names())}")
    arch_args = _expect(raw.get("arch_args") or {}, dict, "arch_args", where)
    for key in arch_args:
        _expect(key, str, "an arch_args key", where)
    scale = _expect(raw["scale"], int, "scale", where)
    if "scale" in arch_args and arch_args["scale"] != scale:
        raise SrevalError(f"{where}: scale {scale} differs from arch_args.scale {arch_args['scale']}")
    recipe = raw.get("recipe")
    if recipe is not None:
        _expect(recipe, str, "recipe", where)
    interp = raw.get("interpolation")
    interpolation = None if interp is None else _parse_interpolation(interp, where)
    pipeline = _expect(raw.get("pipeline", "protocol"), str, "pipeline", where)
    if pipeline not in PIPELINES:
        raise SrevalError(f"{where}: pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
    return ZooEntry(
        name=name,
        architecture=architecture,
        scale=scale,
        weights=_parse_weights(raw["weights"], where),
        description=_expect(raw["description"], str, "description", where),
        folder=folder,
        arch_args=dict(arch_args),
        recipe=recipe,
        interpolation=interpolation,
        pipeline=pipeline,
    )


def read_entry(folder: Path) -> ZooEntry:
    """The entry in `folder` (which must hold a config.yaml)."""
    path = folder / CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SrevalError(f"{path} is not valid YAML: {e}") from None
    return parse_config(raw, folder)

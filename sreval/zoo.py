"""Model zoo: named SR models as folders of config + safetensors weights + model card, and ESRGAN network
interpolation between two of them.

An entry is a folder `ROOT/NAME/` holding

- `config.yaml`: architecture (a name in `sreval.archs.model_names()`), its factory arguments, scale, the
  training recipe, and the state of the weights (see `parse_config` for every field);
- `model.safetensors` when the weights are trained here (safetensors, never pickle: loading a zoo model must
  not be able to run code), checked against the sha256 in the config on every load;
- `README.md`: the model card (training data, steps, time, the metrics sreval measured).

Weights that cannot exist yet are entries too, with a status saying why (`not-trained`, `not-obtainable`), so
that `sreval zoo list` shows what is missing instead of hiding it. `external` weights are a file sreval may
not redistribute (e.g. the official EnhanceNet-PAT checkpoint): it is resolved as an `sreval.assets` asset and
read, unmodified, by a loader registered with `register_weight_loader`.

Roots, searched in this order (the first entry of a name wins):

1. the folders in `SREVAL_ZOO` (separated by the OS path separator) if it is set, else the user zoo
   `$XDG_DATA_HOME/sreval/zoo` (default `~/.local/share/sreval/zoo`);
2. the repository's `models/` (the built-in entries; an installed, non-editable package has none).

Models that sreval writes (`interpolate`, `save_model`) go to the first of (1) unless a root is given. The
user zoo sits beside the results database rather than in the cache: models are results, and clearing the
cache must not delete them.

Files are written atomically and `config.yaml` last, so a folder only becomes an entry once it is complete;
an interrupted save leaves a folder without a config, which is ignored and overwritten by the next save.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import safetensors
import safetensors.torch
import torch
import yaml
from torch import nn

from sreval import __version__, assets
from sreval.archs import create_model, model_names
from sreval.errors import SrevalError, shown
from sreval.fileutil import atomic_open

CONFIG = "config.yaml"
CARD = "README.md"
WEIGHTS = "model.safetensors"

WeightStatus = Literal["trained", "not-trained", "not-obtainable", "external"]
STATUSES: tuple[WeightStatus, ...] = ("trained", "not-trained", "not-obtainable", "external")

#: path of the unmodified external file → state dict in our module's names
WeightLoader = Callable[[Path], Mapping[str, torch.Tensor]]

#: Modules that register weight loaders. Imported on first use of a loader rather than here, so that
#: importing the zoo (e.g. for `sreval zoo list`) does not pull in checkpoint readers.
WEIGHT_LOADER_MODULES: tuple[str, ...] = ("sreval.archs.enhancenet_official",)

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
_LIST_LIMIT = 8  # keys named per kind in a mismatch message; a wholly wrong file would otherwise list hundreds


# --- Roots ------------------------------------------------------------------------------------------------


def repo_models_dir() -> Path | None:
    """The source tree's `models/`, or None for an installed package (whose parent folder is site-packages)."""
    repo = Path(__file__).resolve().parent.parent
    models = repo / "models"
    return models if (repo / "pyproject.toml").is_file() and models.is_dir() else None


def user_zoo() -> Path:
    """Where user-made models go when SREVAL_ZOO is not set."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "sreval" / "zoo"


def _env_roots() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get("SREVAL_ZOO", "").split(os.pathsep) if p]


def zoo_roots(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """Every root searched, in order: `extra` first, then SREVAL_ZOO (or the user zoo), then the repo's models/."""
    roots = [Path(p).expanduser() for p in extra] + (_env_roots() or [user_zoo()])
    if (builtin := repo_models_dir()) is not None:
        roots.append(builtin)
    unique: list[Path] = []
    for root in roots:
        if all(root.resolve() != seen.resolve() for seen in unique):
            unique.append(root)
    return unique


def write_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Root that new models go to: `explicit`, else SREVAL_ZOO's first folder, else the user zoo."""
    if explicit:
        return Path(explicit).expanduser()
    return (_env_roots() or [user_zoo()])[0]


# --- Entries ----------------------------------------------------------------------------------------------


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

    def model_kwargs(self) -> dict[str, Any]:
        """Factory arguments: `arch_args`, with the entry's `scale` added when they do not name it."""
        return {"scale": self.scale, **self.arch_args}

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


def check_name(name: str) -> str:
    """A zoo name is a folder name: letters, digits, `.`, `_`, `+`, `-`, not starting with punctuation."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SrevalError(
            f"invalid zoo model name {name!r}: use letters, digits, '.', '_', '+' and '-' (at most 100 characters, "
            f"starting with a letter or digit)"
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
    interpolation = None
    if (interp := raw.get("interpolation")) is not None:
        interp = _expect(interp, dict, "interpolation", where)
        if set(interp) != {"a", "b", "alpha"}:
            raise SrevalError(f"{where}: interpolation must have exactly the keys a, b, alpha, got {sorted(interp)}")
        interpolation = Interpolation(
            _expect(interp["a"], str, "interpolation.a", where),
            _expect(interp["b"], str, "interpolation.b", where),
            float(_expect(interp["alpha"], (int, float), "interpolation.alpha", where)),
        )
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


def scan(roots: Sequence[Path] | None = None) -> tuple[list[ZooEntry], list[str]]:
    """Every entry under `roots` (default `zoo_roots()`), first of a name winning, and one message per folder
    whose config is invalid."""
    entries: dict[str, ZooEntry] = {}
    problems: list[str] = []
    for root in zoo_roots() if roots is None else roots:
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.name in entries or not (folder / CONFIG).is_file():
                continue
            try:
                entries[folder.name] = read_entry(folder)
            except SrevalError as e:
                problems.append(str(e))
    return sorted(entries.values(), key=lambda e: e.name), problems


def list_models(roots: Sequence[Path] | None = None) -> list[ZooEntry]:
    """All entries, by name; an invalid config is an error naming its file."""
    entries, problems = scan(roots)
    if problems:
        raise SrevalError("; ".join(problems))
    return entries


def get_entry(name: str, roots: Sequence[Path] | None = None) -> ZooEntry:
    """The entry `name` from the first root that has it."""
    check_name(name)
    searched = zoo_roots() if roots is None else list(roots)
    for root in searched:
        if (root / name / CONFIG).is_file():
            return read_entry(root / name)
    known = [e.name for e in scan(searched)[0]]
    raise SrevalError(
        f"unknown zoo model {name!r}; known: {', '.join(known) or '(none)'} (searched {', '.join(map(str, searched))})"
    )


def _entry(model: str | ZooEntry, roots: Sequence[Path] | None) -> ZooEntry:
    return model if isinstance(model, ZooEntry) else get_entry(model, roots)


# --- Weight loaders for external files --------------------------------------------------------------------


_LOADERS: dict[str, WeightLoader] = {}


def register_weight_loader(name: str, fn: WeightLoader) -> None:
    """Registers `fn(path) -> state dict` for entries whose config says `weights: {status: external, loader: name}`.

    The state dict must fit the entry's architecture exactly, buffers included (e.g. EnhanceNet's `mean`).
    """
    if name in _LOADERS and _LOADERS[name] is not fn:
        raise SrevalError(f"weight loader {name!r} is already registered (by {_LOADERS[name].__qualname__})")
    _LOADERS[name] = fn


def weight_loader_names() -> list[str]:
    _import_loader_modules()
    return sorted(_LOADERS)


def _import_loader_modules() -> None:
    for module in WEIGHT_LOADER_MODULES:
        importlib.import_module(module)


def _get_loader(name: str) -> WeightLoader:
    _import_loader_modules()
    try:
        return _LOADERS[name]
    except KeyError:
        known = ", ".join(sorted(_LOADERS)) or "none"
        raise SrevalError(f"weight loader {name!r} is not registered (registered: {known})") from None


# --- Reading and checking weights -------------------------------------------------------------------------


def _safetensors_metadata(data: bytes, path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file: 8-byte little-endian header length, then a JSON header."""
    try:
        if len(data) < 8:
            raise ValueError("too short")
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict):
            raise ValueError("bad __metadata__")
        return {str(k): str(v) for k, v in metadata.items()}
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise SrevalError(f"{path} is not a safetensors file") from None


def _read_safetensors(entry: ZooEntry) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a trained entry's file, after checking it against the config's sha256."""
    path = entry.weights_path
    assert path is not None
    if not path.is_file():
        raise SrevalError(f"{path} is missing (the config of zoo model {entry.name!r} says its weights are trained)")
    data = path.read_bytes()  # one read for checksum and parsing: what was verified is what gets loaded
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.weights.sha256:
        raise SrevalError(
            f"{path} has sha256 {digest}, but {entry.folder / CONFIG} says {entry.weights.sha256}: the file was "
            f"changed or replaced after the entry was written"
        )
    metadata = _safetensors_metadata(data, path)
    try:
        return parse_safetensors(data), metadata
    except ValueError as error:
        raise SrevalError(f"{path} is {error}") from None


#: How a PyTorch checkpoint starts (zip archive, or a legacy pickle's protocol byte); only used to explain why a
#: file that is not safetensors was refused (a safetensors header length may start with these bytes too).
_PICKLE_STARTS = (b"PK\x03\x04", b"\x80")


def parse_safetensors(data: bytes) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file's bytes; `ValueError` saying why not (without a file name) otherwise."""
    try:
        return safetensors.torch.load(data)
    except safetensors.SafetensorError as error:
        if data.startswith(_PICKLE_STARTS):
            raise ValueError(
                "not a valid safetensors file but a PyTorch pickle (.pth/.pt); sreval reads weights only from "
                "safetensors, because loading a pickle can run code"
            ) from None
        raise ValueError(
            f"not a valid safetensors file ({error}); it is truncated, damaged or of another format"
        ) from None


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file at `path`, or `SrevalError` naming the file and what is wrong.

    Read into memory rather than mapped: a mapped file that is replaced or truncated while in use would crash
    the process instead of raising."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SrevalError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return parse_safetensors(data)
    except ValueError as error:
        raise SrevalError(f"{path} is {error}") from None


def checksum_status(entry: ZooEntry) -> str:
    """For trained entries: 'ok', 'mismatch' or 'missing'; for the others, their status."""
    path = entry.weights_path
    if path is None:
        return entry.weights.status
    if not path.is_file():
        return "missing"
    return "ok" if assets.sha256_of(path) == entry.weights.sha256 else "mismatch"


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def _named(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_LIST_LIMIT])
    return shown + (f" … and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else "")


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps `given` from loading strictly into a model whose state dict is `expected`, one clause per kind."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k}: expected {_shape(v)}, file has {_shape(given[k])}"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_named(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_named(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_named(shapes)}")
    return problems


def _describe_arch(entry: ZooEntry) -> str:
    return f"{entry.architecture}({', '.join(f'{k}={v!r}' for k, v in entry.model_kwargs().items())})"


def _build(entry: ZooEntry, device: str | torch.device = "cpu") -> nn.Module:
    where = entry.folder / CONFIG
    try:
        with torch.device(device):
            return create_model(entry.architecture, **entry.model_kwargs())
    except (TypeError, ValueError, SrevalError) as e:  # the factory's own message, placed in the config that caused it
        raise SrevalError(f"{where}: arch_args do not fit architecture {entry.architecture!r}: {e}") from None


def count_parameters(entry: ZooEntry) -> int:
    """Parameters of the entry's architecture (built on the meta device: shapes only, no memory or init)."""
    return sum(p.numel() for p in _build(entry, device="meta").parameters())


def _check_fits(entry: ZooEntry, model: nn.Module, state: Mapping[str, torch.Tensor], source: Path | str) -> None:
    problems = state_dict_mismatch(model.state_dict(), state)
    if problems:
        raise SrevalError(
            f"weights in {source} do not fit zoo model {entry.name!r} ({_describe_arch(entry)}): " + "; ".join(problems)
        )


def _check_metadata(entry: ZooEntry, metadata: Mapping[str, str], path: Path) -> None:
    """A file saved by sreval names its architecture; a config edited to another one is caught here."""
    if "architecture" in metadata and metadata["architecture"] != entry.architecture:
        raise SrevalError(
            f"{path} was saved from architecture {metadata['architecture']!r}, but {entry.folder / CONFIG} says "
            f"{entry.architecture!r}"
        )
    if "arch_args" in metadata:
        try:
            saved = json.loads(metadata["arch_args"])
        except ValueError:
            raise SrevalError(f"{path}: its arch_args metadata is not JSON: {metadata['arch_args']!r}") from None
        if saved != json.loads(json.dumps(entry.model_kwargs())):
            raise SrevalError(
                f"{path} was saved with arch_args {saved}, but {entry.folder / CONFIG} gives {entry.model_kwargs()}"
            )


def _weights_and_model(
    entry: ZooEntry, asset_paths: Mapping[str, str | os.PathLike[str]] | None
) -> tuple[dict[str, torch.Tensor], nn.Module]:
    """The entry's verified state dict (CPU) and an architecture instance (CPU) it fits."""
    if not entry.has_weights:
        raise SrevalError(f"zoo model {entry.name!r} has no weights ({entry.weights.status}): {entry.weights.reason}")
    if entry.weights.status == "trained":
        tensors, metadata = _read_safetensors(entry)
        source = entry.weights_path
        assert source is not None
        _check_metadata(entry, metadata, source)
        model = _build(entry)
    else:
        assert entry.weights.asset is not None and entry.weights.loader is not None
        loader = _get_loader(entry.weights.loader)
        source = assets.resolve(entry.weights.asset, (asset_paths or {}).get(entry.weights.asset))
        loaded = loader(source)
        if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise SrevalError(f"weight loader {entry.weights.loader!r} did not return a state dict for {source}")
        tensors = {str(k): v.to("cpu") for k, v in loaded.items()}
        model = _build(entry)
    _check_fits(entry, model, tensors, source)
    return tensors, model


def load_state_dict(
    model: str | ZooEntry,
    asset_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    roots: Sequence[Path] | None = None,
) -> dict[str, torch.Tensor]:
    """The verified weights of a zoo model as a CPU state dict."""
    return _weights_and_model(_entry(model, roots), asset_paths)[0]


def load_model(
    model: str | ZooEntry,
    device: str | torch.device = "cpu",
    asset_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    roots: Sequence[Path] | None = None,
) -> nn.Module:
    """Builds a zoo model's architecture and loads its checked weights; returned in eval mode on `device`.

    Errors (all `SrevalError`): unknown name; no weights (quoting the config's reason); a file whose sha256
    differs from the config; weights that do not fit the architecture (missing and unexpected keys and every
    shape mismatch named); an external file that is not installed or a loader that is not registered.
    `asset_paths` maps asset names to explicit files, as `--asset NAME=PATH` does for metrics.
    """
    state, module = _weights_and_model(_entry(model, roots), asset_paths)
    module.load_state_dict(state, strict=True)
    return module.to(device).eval()


# --- Writing ----------------------------------------------------------------------------------------------


def _tensors_for_file(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors wants dense, contiguous CPU tensors that share no memory: a clone guarantees all three
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}


def _json_args(entry_args: Mapping[str, Any], where: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(json.dumps(dict(entry_args)))
    except (TypeError, ValueError):
        raise SrevalError(
            f"{where}: arch_args {dict(entry_args)} must be plain values (numbers, strings, lists) to be written to "
            f"a config"
        ) from None
    return result


def _fmt_alpha(alpha: float) -> str:
    return f"{alpha:g}"


def default_card(entry: ZooEntry, n_params: int, training: str | None = None) -> str:
    """A model card for an entry written by sreval; `training` replaces the (unrecorded) training section."""
    weights = entry.weights
    if weights.status == "trained":
        weights_line = f"`{weights.file}` (safetensors), sha256 `{weights.sha256}`"
    elif weights.status == "external":
        weights_line = f"external file, asset `{weights.asset}`, read by loader `{weights.loader}`"
    else:
        weights_line = f"none ({weights.status}): {weights.reason}"
    lines = [
        f"# {entry.name}",
        "",
        entry.description,
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{entry.architecture}` {json.dumps(entry.model_kwargs())}, {n_params:,} parameters |",
        f"| scale | ×{entry.scale} |",
        f"| recipe | {f'`{entry.recipe}`' if entry.recipe else '—'} |",
        f"| weights | {weights_line} |",
        f"| written by | sreval {__version__} |",
        "",
        "## Training",
        "",
        training or "Not recorded: training data, steps and time were not given when this entry was saved.",
        "",
        "## Metrics measured by sreval",
        "",
        "Not measured yet.",
        "",
    ]
    return "\n".join(lines)


def _write_entry(
    state: Mapping[str, torch.Tensor],
    entry: ZooEntry,
    card: str | None,
    metadata: Mapping[str, str] | None,
    overwrite: bool,
    training: str | None = None,
) -> ZooEntry:
    """Checks `state` against the entry's architecture, then writes weights, card and (last) config."""
    template = _build(entry, device="meta")
    _check_fits(entry, template, state, "the state dict to save")
    folder = entry.folder
    config_path = folder / CONFIG
    if config_path.exists():
        if not overwrite:
            raise SrevalError(f"zoo model {entry.name!r} already exists at {folder}; pass overwrite to replace it")
        # un-commit first: a save that fails halfway must not leave the old config vouching for new weights
        config_path.unlink()
    file_metadata = {
        **(metadata or {}),
        "format": "pt",
        "name": entry.name,
        "architecture": entry.architecture,
        "arch_args": json.dumps(entry.model_kwargs(), sort_keys=True),
        "sreval_version": __version__,
    }
    data = safetensors.torch.save(_tensors_for_file(state), metadata=file_metadata)
    with atomic_open(folder / WEIGHTS, "wb") as f:
        f.write(data)
    entry = replace(entry, weights=Weights("trained", WEIGHTS, hashlib.sha256(data).hexdigest()))
    n_params = sum(p.numel() for p in template.parameters())
    with atomic_open(entry.card_path, "w", encoding="utf-8") as f:
        f.write(card if card is not None else default_card(entry, n_params, training))
    with atomic_open(config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(entry.to_config(), f, sort_keys=False, allow_unicode=True)
    return read_entry(folder)


def _check_free(name: str, root: Path, overwrite: bool) -> None:
    """A new name must not collide with, or silently shadow, an entry in any searched root."""
    if overwrite:
        return
    for other in [root, *zoo_roots()]:
        if (other / name / CONFIG).is_file():
            raise SrevalError(f"zoo model {name!r} already exists at {other / name}; choose another name or overwrite")


def save_model(
    module: nn.Module,
    name: str,
    architecture: str,
    arch_args: Mapping[str, Any] | None = None,
    scale: int = 4,
    recipe: str | None = None,
    description: str = "",
    card: str | None = None,
    metadata: Mapping[str, str] | None = None,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    training: str | None = None,
) -> ZooEntry:
    """Writes `module`'s weights as a new zoo entry `root/name` (root default: `write_root()`).

    The state dict must fit `create_model(architecture, **arch_args)` exactly. `card` is the whole model card
    (default: one generated from the config, with `training` as its training section: data, steps, time);
    `metadata` goes into the safetensors header. An existing name is an error unless `overwrite`.
    """
    check_name(name)
    target = write_root(root)
    _check_free(name, target, overwrite)
    where = str(target / name / CONFIG)
    entry = ZooEntry(
        name=name,
        architecture=architecture,
        scale=scale,
        weights=Weights("trained", WEIGHTS, "0" * 64),  # replaced by the real checksum when written
        description=description or f"{architecture} ×{scale}",
        folder=target / name,
        arch_args=_json_args(arch_args or {}, where),
        recipe=recipe,
    )
    parse_config(entry.to_config(), entry.folder)  # the same rules as a hand-written config
    return _write_entry(module.state_dict(), entry, card, metadata, overwrite, training)


# --- Network interpolation (ESRGAN, Wang et al. 2018, eq. 4) ----------------------------------------------


def _differences(a: ZooEntry, b: ZooEntry) -> list[str]:
    diffs = []
    if a.architecture != b.architecture:
        diffs.append(f"architecture: {a.architecture} vs {b.architecture}")
    ka, kb = a.model_kwargs(), b.model_kwargs()
    for key in sorted(set(ka) | set(kb)):
        if ka.get(key, "(default)") != kb.get(key, "(default)"):
            diffs.append(f"arch_args.{key}: {ka.get(key, '(default)')} vs {kb.get(key, '(default)')}")
    return diffs


def _check_alpha(alpha: float) -> float:
    # Only [0, 1]: eq. 4 is defined there, and outside it the result is no longer "between" the two models
    # that its card and the perception–distortion sweep describe.
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not (0.0 <= alpha <= 1.0):
        raise SrevalError(f"alpha must be a number in [0, 1], got {shown(alpha)}")
    return float(alpha)


def interpolate_state_dicts(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """θ = (1−α)·θ_a + α·θ_b for floating tensors (exactly θ_a at α = 0 and θ_b at α = 1); integer buffers such
    as BatchNorm's num_batches_tracked are counters, not weights, and are taken from `a`."""
    alpha = _check_alpha(alpha)
    problems = state_dict_mismatch(a, b)
    if problems:
        raise SrevalError("the two state dicts differ: " + "; ".join(problems))
    out = {}
    for key, ta in a.items():
        if ta.is_floating_point():
            # lerp switches formula at α = 0.5 so that both endpoints are reproduced bit for bit
            out[key] = torch.lerp(ta, b[key].to(ta.dtype), alpha)
        else:
            out[key] = ta.clone()
    return out


def _interpolation_pair(
    a: str | ZooEntry,
    b: str | ZooEntry,
    asset_paths: Mapping[str, str | os.PathLike[str]] | None,
    roots: Sequence[Path] | None,
) -> tuple[ZooEntry, ZooEntry, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    ea, eb = _entry(a, roots), _entry(b, roots)
    if diffs := _differences(ea, eb):
        raise SrevalError(
            f"cannot interpolate {ea.name!r} and {eb.name!r}: the architectures must be identical, but "
            + "; ".join(diffs)
        )
    for e in (ea, eb):
        if not e.has_weights:
            raise SrevalError(
                f"cannot interpolate: zoo model {e.name!r} has no weights ({e.weights.status}): {e.weights.reason}"
            )
    return ea, eb, load_state_dict(ea, asset_paths), load_state_dict(eb, asset_paths)


def _source_line(e: ZooEntry) -> str:
    if e.weights.status == "trained":
        return f"`{e.name}` ({e.folder}, sha256 `{e.weights.sha256}`)"
    return f"`{e.name}` (asset `{e.weights.asset}` via loader `{e.weights.loader}`)"


def _write_interpolated(
    ea: ZooEntry,
    eb: ZooEntry,
    sa: Mapping[str, torch.Tensor],
    sb: Mapping[str, torch.Tensor],
    alpha: float,
    name: str,
    target: Path,
    overwrite: bool,
) -> ZooEntry:
    entry = ZooEntry(
        name=name,
        architecture=ea.architecture,
        scale=ea.scale,
        weights=Weights("trained", WEIGHTS, "0" * 64),
        description=f"network interpolation (1−α)·{ea.name} + α·{eb.name}, α = {_fmt_alpha(alpha)}",
        folder=target / name,
        arch_args=_json_args(ea.arch_args, str(target / name / CONFIG)),
        recipe=None,
        interpolation=Interpolation(ea.name, eb.name, alpha),
    )
    training = (
        f"None: made by network interpolation (ESRGAN, Wang et al. 2018, eq. 4), θ = (1−α)·θ_A + α·θ_B with "
        f"α = {_fmt_alpha(alpha)}, A = {_source_line(ea)}, B = {_source_line(eb)}. Floating-point tensors are "
        f"interpolated; integer buffers are A's. For training data, steps and time see the cards of A and B."
    )
    metadata = {"interpolation": json.dumps({"a": ea.name, "b": eb.name, "alpha": alpha})}
    return _write_entry(interpolate_state_dicts(sa, sb, alpha), entry, None, metadata, overwrite, training)


def interpolate(
    a: str | ZooEntry,
    b: str | ZooEntry,
    alpha: float,
    name: str,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    asset_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    roots: Sequence[Path] | None = None,
) -> ZooEntry:
    """A new zoo model `name` with θ = (1−α)·θ_a + α·θ_b (ESRGAN eq. 4), α in [0, 1], written under `root`
    (default `write_root()`). A and B need the same architecture and arch_args, and weights."""
    alpha = _check_alpha(alpha)
    check_name(name)
    target = write_root(root)
    _check_free(name, target, overwrite)
    ea, eb, sa, sb = _interpolation_pair(a, b, asset_paths, roots)
    return _write_interpolated(ea, eb, sa, sb, alpha, name, target, overwrite)


def sweep_name(prefix: str, alpha: float) -> str:
    """`PREFIX-a0.8`: the name `alpha_sweep` gives the model for `alpha`."""
    return f"{prefix}-a{_fmt_alpha(alpha)}"


def alpha_sweep(
    a: str | ZooEntry,
    b: str | ZooEntry,
    alphas: Sequence[float],
    prefix: str,
    root: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    asset_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    roots: Sequence[Path] | None = None,
) -> list[str]:
    """One interpolated model per α (named `sweep_name(prefix, α)`), e.g. for the perception–distortion plane;
    returns the names in the order of `alphas`. Everything is checked before the first model is written."""
    if len(alphas) == 0:  # not `not alphas`: a numpy array of alphas has no truth value
        raise SrevalError("the sweep needs at least one alpha")
    checked = [_check_alpha(x) for x in alphas]
    names = [check_name(sweep_name(prefix, x)) for x in checked]
    if len(set(names)) != len(names):
        raise SrevalError(f"alphas {[float(a) for a in alphas]} give duplicate names: {', '.join(names)}")
    target = write_root(root)
    for name in names:
        _check_free(name, target, overwrite)
    ea, eb, sa, sb = _interpolation_pair(a, b, asset_paths, roots)
    for alpha, name in zip(checked, names, strict=True):
        _write_interpolated(ea, eb, sa, sb, alpha, name, target, overwrite)
    return names


def tensor_summary(entry: ZooEntry) -> tuple[int, int]:
    """(number of tensors, number of elements) in a trained entry's verified file."""
    tensors, _ = _read_safetensors(entry)
    return len(tensors), sum(t.numel() for t in tensors.values())


__all__ = [
    "STATUSES",
    "WEIGHT_LOADER_MODULES",
    "Interpolation",
    "Weights",
    "ZooEntry",
    "alpha_sweep",
    "checksum_status",
    "count_parameters",
    "get_entry",
    "interpolate",
    "interpolate_state_dicts",
    "list_models",
    "load_model",
    "load_state_dict",
    "parse_config",
    "register_weight_loader",
    "repo_models_dir",
    "save_model",
    "scan",
    "state_dict_mismatch",
    "sweep_name",
    "user_zoo",
    "weight_loader_names",
    "write_root",
    "zoo_roots",
]

"""Network interpolation (ESRGAN, Wang et al. 2018, eq. 4): θ = (1−α)·θ_a + α·θ_b between two zoo models of the
same architecture, written as new zoo entries, one α or a sweep of them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from sreval import assets
from sreval.archs.state_dicts import state_dict_mismatch
from sreval.errors import ParameterError, SrevalError, shown
from sreval.zoo.entry import Interpolation, ZooEntry, check_name
from sreval.zoo.load import load_state_dict
from sreval.zoo.locations import check_free, resolve_entry, write_root
from sreval.zoo.write import PENDING, json_args, write_entry


def _fmt_alpha(alpha: float) -> str:
    return f"{alpha:g}"


def _differences(a: ZooEntry, b: ZooEntry) -> list[str]:
    diffs = []
    if a.architecture != b.architecture:
        diffs.append(f"architecture: {a.architecture} vs {b.architecture}")
    ka, kb = a.model_kwargs(), b.model_kwargs()
    for key in sorted(set(ka) | set(kb)):
        if ka.get(key, "(default)") != kb.get(key, "(default)"):
            diffs.append(f"arch_args.{key}: {ka.get(key, '(default)')} vs {kb.get(key, '(default)')}")
    return diffs


def _check_alpha(alpha: float, parameter: str = "alpha") -> float:
    # Only [0, 1]: eq. 4 is defined there, and outside it the result is no longer "between" the two models
    # that its card and the perception–distortion sweep describe.
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not (0.0 <= alpha <= 1.0):
        raise ParameterError(parameter, f"alpha must be a number in [0, 1], got {shown(alpha)}")
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
    ea, eb = resolve_entry(a, roots), resolve_entry(b, roots)
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


def _source_line(e: ZooEntry, asset_paths: Mapping[str, str | os.PathLike[str]] | None) -> str:
    if e.weights.status == "trained":
        return f"`{e.name}` ({e.folder}, sha256 `{e.weights.sha256}`)"
    # The asset's name does not say which file was read (a catalogue entry without a pinned hash accepts any
    # file of that name), so the card records the checksum of the one that was blended.
    assert e.weights.asset is not None
    path = assets.resolve(e.weights.asset, (asset_paths or {}).get(e.weights.asset))
    checksum = assets.sha256_of(path)
    return f"`{e.name}` (asset `{e.weights.asset}`, file sha256 `{checksum}`, loader `{e.weights.loader}`)"


def _write_interpolated(
    ea: ZooEntry,
    eb: ZooEntry,
    sa: Mapping[str, torch.Tensor],
    sb: Mapping[str, torch.Tensor],
    alpha: float,
    name: str,
    target: Path,
    overwrite: bool,
    asset_paths: Mapping[str, str | os.PathLike[str]] | None,
) -> ZooEntry:
    entry = ZooEntry(
        name=name,
        architecture=ea.architecture,
        scale=ea.scale,
        weights=PENDING,
        description=f"network interpolation (1−α)·{ea.name} + α·{eb.name}, α = {_fmt_alpha(alpha)}",
        folder=target / name,
        arch_args=json_args(ea.arch_args),
        recipe=None,
        interpolation=Interpolation(ea.name, eb.name, alpha),
    )
    training = (
        f"None: made by network interpolation (ESRGAN, Wang et al. 2018, eq. 4), θ = (1−α)·θ_A + α·θ_B with "
        f"α = {_fmt_alpha(alpha)}, A = {_source_line(ea, asset_paths)}, B = {_source_line(eb, asset_paths)}. "
        f"Floating-point tensors are interpolated; integer buffers are A's. For training data, steps and time see "
        f"the cards of A and B."
    )
    metadata = {"interpolation": json.dumps({"a": ea.name, "b": eb.name, "alpha": alpha})}
    return write_entry(interpolate_state_dicts(sa, sb, alpha), entry, metadata, overwrite, training)


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
    check_free(name, target, overwrite)
    ea, eb, sa, sb = _interpolation_pair(a, b, asset_paths, roots)
    return _write_interpolated(ea, eb, sa, sb, alpha, name, target, overwrite, asset_paths)


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
        raise ParameterError("alphas", "the sweep needs at least one alpha")
    checked = [_check_alpha(x, "alphas") for x in alphas]
    names = [check_name(sweep_name(prefix, x), "prefix") for x in checked]
    if len(set(names)) != len(names):
        raise ParameterError("alphas", f"alphas {[float(a) for a in alphas]} give duplicate names: {', '.join(names)}")
    target = write_root(root)
    for name in names:
        check_free(name, target, overwrite)
    ea, eb, sa, sb = _interpolation_pair(a, b, asset_paths, roots)
    for alpha, name in zip(checked, names, strict=True):
        _write_interpolated(ea, eb, sa, sb, alpha, name, target, overwrite, asset_paths)
    return names

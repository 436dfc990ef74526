"""Methods from spec strings: `nn`, `bicubic`, `hr`, `folder:PATH`, or a zoo model's name (`srresnet-mse`, or
`NAME-matlab-lr` for a zoo model with its own pipeline run on the protocol's LR)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from sreval.errors import ParameterError
from sreval.inference import InferenceOptions
from sreval.methods.base import Method
from sreval.methods.baselines import Bicubic, NearestNeighbour, Reference
from sreval.methods.folder import Folder
from sreval.methods.network import zoo_method, zoo_method_names

_NAMED: dict[str, Callable[[], Method]] = {"nn": NearestNeighbour, "bicubic": Bicubic, "hr": Reference}
_PREFIXED: dict[str, Callable[[str], Method]] = {"folder": Folder}


def create_method(
    spec: str, *, options: InferenceOptions | None = None, asset_paths: dict[str, Path] | None = None
) -> Method:
    """The method `spec` names (see the module docstring); `options` and `asset_paths` are for zoo models (how to
    run the network, where its external weights are)."""
    spec = spec.strip()
    prefix, sep, arg = spec.partition(":")
    if sep and prefix in _PREFIXED:
        if not arg:
            raise ParameterError("spec", f"method {spec!r} needs an argument after '{prefix}:'")
        return _PREFIXED[prefix](arg)
    if spec.lower() in _NAMED:
        return _NAMED[spec.lower()]()
    if (method := zoo_method(spec, options=options, asset_paths=asset_paths)) is not None:
        return method
    allowed = [*_NAMED, *(f"{p}:ARG" for p in _PREFIXED), *zoo_method_names()]
    raise ParameterError("spec", f"unknown method {spec!r}; available: {', '.join(allowed)}")


def parse_methods(
    methods: Sequence[str], *, options: InferenceOptions | None = None, asset_paths: dict[str, Path] | None = None
) -> list[Method]:
    """The methods of the specs `methods`, in order; blank specs are skipped, and two methods may not share a
    name."""
    if isinstance(methods, str):  # a string is a sequence of one-letter specs: never what is meant
        raise ParameterError("methods", f"methods must be a sequence of method specs, got the string {methods!r}")
    named = [s.strip() for s in methods if s.strip()]
    if not named:
        raise ParameterError("methods", f"no method named in {list(methods)!r}")
    created: list[Method] = []
    for spec in named:
        try:
            created.append(create_method(spec, options=options, asset_paths=asset_paths))
        except ParameterError as error:
            raise ParameterError("methods", str(error)) from error
    names = [m.name for m in created]
    if len(set(names)) != len(names):
        raise ParameterError("methods", f"two methods share a name in {named!r}: {names}; name folders differently")
    return created

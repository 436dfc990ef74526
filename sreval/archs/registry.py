"""Registries of the networks: `create_model(name, **kwargs)` builds a network by name (timm-style), and
`weight_loader(name)` reads a checkpoint in a foreign format (e.g. TF1) into that network's state dict.

Each family module decorates its factory functions with `register_model` (and its checkpoint readers with
`register_weight_loader`); `sreval.archs` imports the family modules explicitly, so the registries are filled by
ordinary imports rather than by scanning a folder or naming modules in strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from sreval.errors import ParameterError, SrevalError

ModelFactory = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFactory)

#: path of an unmodified checkpoint file → state dict in our module's names
WeightLoader = Callable[[Path], Mapping[str, torch.Tensor]]

_REGISTRY: dict[str, ModelFactory] = {}
_LOADERS: dict[str, WeightLoader] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Decorator that registers a factory under `name`; a name can be registered once only."""

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise SrevalError(f"model {name!r} is already registered (by {_REGISTRY[name].__qualname__})")
        _REGISTRY[name] = factory
        return factory

    return decorate


def model_names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Builds the registered model `name`, passing `kwargs` to its factory (e.g. `num_block=1` for a tiny net)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ParameterError("name", f"unknown model {name!r}; known models: {', '.join(model_names())}") from None
    return factory(**kwargs)


def register_weight_loader(name: str, fn: WeightLoader) -> None:
    """Registers `fn(path) -> state dict` as the checkpoint reader `name` (what a zoo entry with external weights
    names as its `loader`). The state dict must fit the network exactly, buffers included (e.g. EnhanceNet's
    `mean`)."""
    if name in _LOADERS and _LOADERS[name] is not fn:
        raise SrevalError(f"weight loader {name!r} is already registered (by {_LOADERS[name].__qualname__})")
    _LOADERS[name] = fn


def weight_loader_names() -> list[str]:
    """Registered checkpoint readers, sorted."""
    return sorted(_LOADERS)


def weight_loader(name: str) -> WeightLoader:
    """The checkpoint reader registered as `name`."""
    try:
        return _LOADERS[name]
    except KeyError:
        known = ", ".join(sorted(_LOADERS)) or "none"
        raise ParameterError("name", f"weight loader {name!r} is not registered (registered: {known})") from None

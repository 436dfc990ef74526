"""Model registry: `create_model(name, **kwargs)` builds a network by name (timm-style).

Each family module decorates its factory functions with `register_model`; `sreval.archs` imports the family
modules explicitly, so the registry is filled by ordinary imports rather than by scanning a folder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from sreval.errors import SrevalError

ModelFactory = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFactory)

_REGISTRY: dict[str, ModelFactory] = {}


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
        raise SrevalError(f"unknown model {name!r}; known models: {', '.join(model_names())}") from None
    return factory(**kwargs)

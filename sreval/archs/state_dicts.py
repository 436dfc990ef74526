"""What keeps a state dict from loading into a network, said in a message a person can read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

#: Keys named per kind in a message: a file of another network would otherwise list hundreds.
LIST_LIMIT = 8


def named_keys(keys: Sequence[str]) -> str:
    """The first `LIST_LIMIT` keys, and how many more there are."""
    shown = ", ".join(keys[:LIST_LIMIT])
    return shown + (f" … and {len(keys) - LIST_LIMIT} more" if len(keys) > LIST_LIMIT else "")


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps `given` from loading strictly into a model whose state dict is `expected`, one clause per kind."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k}: expected {tuple(v.shape)}, file has {tuple(given[k].shape)}"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    kinds = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
    return [f"{what}: {named_keys(keys)}" for what, keys in kinds if keys]

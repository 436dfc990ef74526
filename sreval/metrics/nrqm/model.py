"""Ma's regression model: the three random forests and linear weights of the model file, and the score."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sreval.errors import SrevalError
from sreval.metrics.nrqm.features import FEATURE_SIZES


@dataclass(frozen=True)
class Forest:
    """One regression forest in randomForest's array layout, (nodes, trees) each, indices 1-based:
    left/right daughter (0 = terminal), split variable and split point, node prediction."""

    left: torch.Tensor
    right: torch.Tensor
    variable: torch.Tensor
    threshold: torch.Tensor
    value: torch.Tensor

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Mean over trees of the leaf reached by going left when feature <= split point (pyiqa's rule)."""
        x = features.to(torch.float64)
        n_nodes, n_trees = self.left.shape
        trees = torch.arange(n_trees)
        node = torch.zeros(n_trees, dtype=torch.long)
        prev = node.clone()
        leaf = torch.full((n_trees,), -1, dtype=torch.long)
        for _ in range(n_nodes):
            active = leaf < 0
            if not bool(active.any()):
                break
            var = self.variable[node, trees] - 1  # 0 at a terminal node → the last feature, as in pyiqa
            go_left = x[var] <= self.threshold[node, trees]
            nxt = torch.where(go_left, self.left[node, trees], self.right[node, trees]) - 1
            prev = torch.where(active, node, prev)
            leaf = torch.where(active & (nxt < 0), node, leaf)
            node = torch.where(active, nxt.clamp(min=0), node)
        leaf = torch.where(leaf < 0, prev, leaf)  # no terminal node within n_nodes steps: pyiqa keeps the last
        return self.value[leaf, trees].mean()


@dataclass(frozen=True)
class NrqmModel:
    """Three forests (local frequency, global frequency, spatial) and the linear weights [b0, b1, b2, b3]:
    score = b0 + b1·rf1 + b2·rf2 + b3·rf3."""

    forests: tuple[Forest, Forest, Forest]
    linear: torch.Tensor
    source: str


_FOREST_FIELDS = {"lDau": "left", "rDau": "right", "mbest": "variable", "upper": "threshold", "avnode": "value"}


def _field(path: Path, record: Any, name: str, where: str) -> Any:
    names = record.dtype.names or ()
    if name not in names:
        raise SrevalError(f"{path}: not an NRQM model file: {where} has no field '{name}' (fields: {', '.join(names)})")
    return record[name]


def _single(path: Path, value: Any, where: str) -> Any:
    if not isinstance(value, np.ndarray) or value.size != 1:
        raise SrevalError(f"{path}: not an NRQM model file: {where} should be a 1×1 struct")
    return value.reshape(-1)[0]


def load_nrqm_model(path: Path) -> NrqmModel:
    """Read Ma's model file (pyiqa's `NRQM_model.mat`, the authors' `model.mat`).

    Format (MATLAB .mat, read with scipy.io.loadmat): a variable `model`, a 1×1 struct with
    - `rf`: a cell of 3 `regRF_train` structs (1×3 in pyiqa's file; 3×1 as the authors' training script
      saves it is accepted too), one per feature group; each has the randomForest arrays `lDau`, `rDau`
      (int, nodes×trees, 1-based daughter index, 0 for a terminal node), `nodestatus`, `nrnodes`, `upper`
      (split point), `avnode` (node prediction), `mbest` (1-based split variable), `ndtree`, `ntree`, …;
      pyiqa reads fields 0, 1, 4, 5, 6 by position, i.e. lDau, rDau, upper, avnode, mbest; we read them by name;
    - `linear`: 4×1 double, the robust-fit weights [intercept, rf1, rf2, rf3].
    """
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except FileNotFoundError as e:
        raise SrevalError(f"NRQM model file not found: {path}") from e
    except Exception as e:  # scipy raises several types for non-.mat content
        raise SrevalError(f"{path}: cannot read as a MATLAB .mat file ({e})") from e
    if "model" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise SrevalError(f"{path}: not an NRQM model file: no variable 'model' (variables: {found})")
    model = _single(path, mat["model"], "variable 'model'")
    if not isinstance(model, np.void):
        raise SrevalError(f"{path}: not an NRQM model file: variable 'model' is not a struct")
    rf = np.asarray(_field(path, model, "rf", "model"))
    linear = np.asarray(_field(path, model, "linear", "model"), dtype=np.float64).reshape(-1)
    if linear.size != 4:
        raise SrevalError(f"{path}: model.linear should hold 4 weights, has {linear.size}")
    cells = rf.reshape(-1)
    if rf.dtype != object or cells.size != 3:
        raise SrevalError(f"{path}: model.rf should be a cell of 3 forests, got shape {rf.shape}")
    forests = []
    for i, cell in enumerate(cells):
        rec = _single(path, cell, f"model.rf{{{i + 1}}}")
        arrays: dict[str, torch.Tensor] = {}
        for field, attr in _FOREST_FIELDS.items():
            a = np.asarray(_field(path, rec, field, f"model.rf{{{i + 1}}}"))
            if a.ndim != 2 or a.size == 0:
                raise SrevalError(f"{path}: model.rf{{{i + 1}}}.{field} should be a nodes×trees array, "
                                  f"got shape {a.shape}")
            is_index = attr in ("left", "right", "variable")
            arrays[attr] = torch.from_numpy(a.astype(np.int64 if is_index else np.float64))
        shapes = {tuple(t.shape) for t in arrays.values()}
        if len(shapes) != 1:
            raise SrevalError(f"{path}: model.rf{{{i + 1}}} arrays differ in shape: {sorted(shapes)}")
        n_nodes = arrays["left"].shape[0]
        for attr, top, what in (("left", n_nodes, "lDau"), ("right", n_nodes, "rDau"),
                                ("variable", FEATURE_SIZES[i], "mbest")):
            idx = arrays[attr]
            if bool((idx < 0).any()) or bool((idx > top).any()):
                raise SrevalError(f"{path}: model.rf{{{i + 1}}}.{what} has values outside 0..{top}")
        forests.append(Forest(**arrays))
    return NrqmModel(forests=(forests[0], forests[1], forests[2]), linear=torch.from_numpy(linear), source=str(path))


def nrqm_score(features: tuple[torch.Tensor, torch.Tensor, torch.Tensor], model: NrqmModel) -> torch.Tensor:
    """Ma's score (float64 scalar): b0 + Σ b_g · forest_g(features_g), each forest the mean over its trees."""
    preds = [forest.predict(f) for forest, f in zip(model.forests, features, strict=True)]
    return torch.stack([torch.ones((), dtype=torch.float64), *preds]) @ model.linear

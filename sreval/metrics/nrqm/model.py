"""Ma's regression model: the three random forests and linear weights of the model file, and the score."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sreval.errors import SrevalError
from sreval.metrics.nrqm.features import FEATURE_SIZES
from sreval.metrics.nrqm.matfile import read_model_file


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
class ForestSet:
    """Several forests as one: every tree of every forest side by side, node arrays padded to the largest
    forest's node count, split variables turned into indices of the concatenated feature vector. All trees
    then advance together, one gather per array and level.

    Each array is stored flat, tree after tree ((trees × nodes,), node k of tree t at t·nodes + k), because a
    1-D index_select is far cheaper than torch's general two-index gather."""

    left: torch.Tensor  # flat row of the left daughter (t·nodes + k), -1 = none
    right: torch.Tensor
    variable: torch.Tensor  # 0-based index into the concatenated features
    threshold: torch.Tensor
    value: torch.Tensor
    n_nodes: int
    steps: torch.Tensor  # (trees,) the most steps a tree may take: its forest's node count
    forest_of: torch.Tensor  # (trees,) which forest each tree belongs to
    n_forests: int

    @staticmethod
    def of(forests: tuple[Forest, ...], sizes: tuple[int, ...]) -> ForestSet:
        n_nodes = max(f.left.shape[0] for f in forests)
        offsets = [sum(sizes[:i]) for i in range(len(sizes))]

        def flat(parts: list[torch.Tensor], fill: float) -> torch.Tensor:
            padded = [torch.nn.functional.pad(t, (0, 0, 0, n_nodes - t.shape[0]), value=fill) for t in parts]
            return torch.cat(padded, dim=1).T.contiguous().reshape(-1)

        def var(f: Forest, offset: int, size: int) -> torch.Tensor:
            # 0 marks a terminal node; pyiqa then reads index −1, the group's last feature.
            return torch.where(f.variable == 0, size, f.variable) - 1 + offset

        n_trees = sum(f.left.shape[1] for f in forests)
        base = (torch.arange(n_trees) * n_nodes)[None, :]
        first = 0
        daughters: dict[str, list[torch.Tensor]] = {"left": [], "right": []}
        for f in forests:
            tree_base = base[:, first : first + f.left.shape[1]]
            for name, d in (("left", f.left), ("right", f.right)):
                daughters[name].append(torch.where(d > 0, d - 1 + tree_base, -1))
            first += f.left.shape[1]
        return ForestSet(
            left=flat(daughters["left"], -1),
            right=flat(daughters["right"], -1),
            variable=flat([var(f, o, n) for f, o, n in zip(forests, offsets, sizes, strict=True)], 0),
            threshold=flat([f.threshold for f in forests], 0),
            value=flat([f.value for f in forests], 0),
            n_nodes=n_nodes,
            steps=torch.cat([torch.full((f.left.shape[1],), f.left.shape[0]) for f in forests]),
            forest_of=torch.cat([torch.full((f.left.shape[1],), i) for i, f in enumerate(forests)]),
            n_forests=len(forests),
        )

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Per forest, the mean over its trees of the leaf each reaches (the rule of `Forest.predict`): the
        walk goes left when feature <= split point and stops at a node without daughter; a tree that finds
        none within its forest's node count keeps the last node, as pyiqa's loop does."""
        x = features.to(torch.float64)
        n_trees = self.steps.numel()
        node = torch.arange(n_trees) * self.n_nodes  # every root
        done = torch.zeros(n_trees, dtype=torch.bool)
        for step in range(int(self.steps.max())):
            go_left = x.index_select(0, self.variable.index_select(0, node)) <= self.threshold.index_select(0, node)
            nxt = torch.where(go_left, self.left.index_select(0, node), self.right.index_select(0, node))
            done = done | (nxt < 0) | (step + 1 >= self.steps)
            if bool(done.all()):
                break
            node = torch.where(done, node, nxt)
        leaf_values = self.value.index_select(0, node)
        sums = torch.zeros(self.n_forests, dtype=torch.float64).index_add_(0, self.forest_of, leaf_values)
        counts = torch.bincount(self.forest_of, minlength=self.n_forests).to(torch.float64)
        return sums / counts


@dataclass(frozen=True)
class NrqmModel:
    """Three forests (local frequency, global frequency, spatial) and the linear weights [b0, b1, b2, b3]:
    score = b0 + b1·rf1 + b2·rf2 + b3·rf3."""

    forests: tuple[Forest, Forest, Forest]
    linear: torch.Tensor
    source: str
    #: The container the file used ("MATLAB 5/7 .mat", "MATLAB 7.3 .mat (HDF5)"); the numbers do not depend on it.
    file_format: str = ""
    #: The three forests laid side by side for evaluation (built from `forests`).
    combined: ForestSet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "combined", ForestSet.of(self.forests, FEATURE_SIZES))


_FOREST_FIELDS = {"lDau": "left", "rDau": "right", "mbest": "variable", "upper": "threshold", "avnode": "value"}


def load_nrqm_model(path: Path) -> NrqmModel:
    """Read Ma's model file: pyiqa's `NRQM_model.mat` or the authors' `model.mat`, MATLAB 5/7 or 7.3 (HDF5).

    The file holds a variable `model`, a 1×1 struct with
    - `rf`: a cell of 3 `regRF_train` structs (1×3 in pyiqa's file; 3×1 as the authors' training script
      saves it is accepted too), one per feature group; each has the randomForest arrays `lDau`, `rDau`
      (int, nodes×trees, 1-based daughter index, 0 for a terminal node), `nodestatus`, `nrnodes`, `upper`
      (split point), `avnode` (node prediction), `mbest` (1-based split variable), `ndtree`, `ntree`, …;
      pyiqa reads fields 0, 1, 4, 5, 6 by position, i.e. lDau, rDau, upper, avnode, mbest; we read them by name;
    - `linear`: 4×1 double, the robust-fit weights [intercept, rf1, rf2, rf3].
    `matfile` reads either container into the same arrays, so both give the same model.
    """
    raw = read_model_file(Path(path))
    linear = np.asarray(raw.linear, dtype=np.float64).reshape(-1)
    if linear.size != 4:
        raise SrevalError(f"{path}: model.linear should hold 4 weights, has {linear.size}")
    forests = [_forest(path, i, fields) for i, fields in enumerate(raw.forests)]
    return NrqmModel(
        forests=(forests[0], forests[1], forests[2]),
        linear=torch.from_numpy(linear),
        source=str(path),
        file_format=raw.file_format,
    )


def _forest(path: Path, i: int, fields: dict[str, np.ndarray]) -> Forest:
    where = f"model.rf{{{i + 1}}}"
    arrays: dict[str, torch.Tensor] = {}
    for name, attr in _FOREST_FIELDS.items():
        a = np.asarray(fields[name])
        if a.ndim != 2 or a.size == 0:
            raise SrevalError(f"{path}: {where}.{name} should be a nodes×trees array, got shape {a.shape}")
        is_index = attr in ("left", "right", "variable")
        arrays[attr] = torch.from_numpy(a.astype(np.int64 if is_index else np.float64))
    shapes = {tuple(t.shape) for t in arrays.values()}
    if len(shapes) != 1:
        raise SrevalError(f"{path}: {where} arrays differ in shape: {sorted(shapes)}")
    n_nodes = arrays["left"].shape[0]
    for attr, top, what in (
        ("left", n_nodes, "lDau"),
        ("right", n_nodes, "rDau"),
        ("variable", FEATURE_SIZES[i], "mbest"),
    ):
        idx = arrays[attr]
        if bool((idx < 0).any()) or bool((idx > top).any()):
            raise SrevalError(f"{path}: {where}.{what} has values outside 0..{top}")
    return Forest(**arrays)


def nrqm_score(features: tuple[torch.Tensor, torch.Tensor, torch.Tensor], model: NrqmModel) -> torch.Tensor:
    """Ma's score (float64 scalar): b0 + Σ b_g · forest_g(features_g), each forest the mean over its trees."""
    preds = model.combined.predict(torch.cat([f.reshape(-1).to(torch.float64) for f in features]))
    return torch.cat([torch.ones(1, dtype=torch.float64), preds]) @ model.linear

"""A stand-in for Ma's NRQM model of the real model's size, for timing only: its scores are not Ma scores.

Three regression forests of 2,000 trees each, grown as randomForest grows them for a training set of the size
Ma et al. used (1,620 images, bootstrap samples, nodes split while they hold more than 5 samples), so the trees
have the node counts (600 to 700 nodes each) and depths (about 20 levels) such a training set gives. Split variables
are random, split points are drawn around the feature values of real images (so walks take realistic paths),
node predictions lie in 0..10. Saved in the layout of `regRF_train`'s structs, the field order pyiqa reads by
position (lDau, rDau, nodestatus, nrnodes, upper, avnode, mbest, ...), which sreval reads by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

N_TRAIN = 1620
N_TREES = 2000
NODE_SIZE = 5


def grow_forest(
    rng: np.random.Generator, centre: np.ndarray, scale: np.ndarray, n_trees: int = N_TREES
) -> dict[str, Any]:
    """One forest over features with these typical values (centre ± scale): all trees grown level by level at
    once. A node holding more than NODE_SIZE samples splits into two uneven parts (Beta(2, 2) share)."""
    n_features = centre.size
    n_rows = 2 * N_TRAIN + 1  # randomForest's nrnodes for nodesize 5
    left = np.zeros((n_rows, n_trees), np.int32)
    right = np.zeros((n_rows, n_trees), np.int32)
    variable = np.zeros((n_rows, n_trees), np.int32)
    upper = np.zeros((n_rows, n_trees))
    value = np.zeros((n_rows, n_trees))
    status = np.zeros((n_rows, n_trees), np.int32)
    used = np.ones(n_trees, np.int64)
    # The frontier: (tree, node row, samples); a bootstrap sample holds about 63 % distinct cases.
    tree = np.arange(n_trees)
    node = np.zeros(n_trees, np.int64)
    size = np.full(n_trees, int(0.632 * N_TRAIN))
    while tree.size:
        value[node, tree] = rng.uniform(0, 10, tree.size)
        status[node, tree] = -1  # terminal unless split below
        split = size > NODE_SIZE
        tree, node, size = tree[split], node[split], size[split]
        # New rows per tree: consecutive after the rows that tree has used, in frontier order.
        order = np.argsort(tree, kind="stable")
        tree, node, size = tree[order], node[order], size[order]
        first = np.searchsorted(tree, tree)  # index of each tree's first entry in the sorted frontier
        rank = np.arange(tree.size) - first
        new = used[tree] + 2 * rank
        np.add.at(used, tree, 2)
        left[node, tree], right[node, tree] = new + 1, new + 2
        status[node, tree] = -3
        var = rng.integers(n_features, size=tree.size)
        variable[node, tree] = var + 1
        upper[node, tree] = centre[var] + scale[var] * rng.normal(size=tree.size)
        share = np.clip(np.rint(size * rng.beta(2, 2, tree.size)), 1, size - 1).astype(np.int64)
        tree = np.concatenate([tree, tree])
        node = np.concatenate([new, new + 1])
        size = np.concatenate([share, size - share])
    rows = int(used.max())
    return {
        "lDau": left[:rows], "rDau": right[:rows], "nodestatus": status[:rows],
        "nrnodes": np.array([[n_rows]], np.int32), "upper": upper[:rows], "avnode": value[:rows],
        "mbest": variable[:rows], "ndtree": used.astype(np.int32)[:, None], "ntree": np.array([[n_trees]], np.int32),
    }  # fmt: skip


def depth_of(forest: dict[str, Any]) -> int:
    """The deepest leaf of any tree (root = level 0)."""
    left = forest["lDau"].astype(np.int64) - 1
    right = forest["rDau"].astype(np.int64) - 1
    trees = np.arange(left.shape[1])
    nodes = np.zeros(left.shape[1], np.int64)
    depth = -1
    while trees.size:
        depth += 1
        inner = left[nodes, trees] >= 0
        trees, nodes = trees[inner], nodes[inner]
        trees, nodes = np.concatenate([trees, trees]), np.concatenate([left[nodes, trees], right[nodes, trees]])
    return depth


def save_standin(path: Path, forests: list[dict[str, Any]], linear: np.ndarray) -> None:
    """`model` as MATLAB saves Ma's struct: model.rf = 1×3 cell of regRF structs, model.linear = 4×1."""
    cell = np.empty((1, 3), dtype=object)
    for i, forest in enumerate(forests):
        rec = np.empty((1, 1), dtype=[(k, object) for k in forest])
        for k, v in forest.items():
            rec[0, 0][k] = v
        cell[0, i] = rec
    model = np.empty((1, 1), dtype=[("rf", object), ("linear", object)])
    model[0, 0]["rf"] = cell
    model[0, 0]["linear"] = np.asarray(linear, dtype=np.float64).reshape(4, 1)
    scipy.io.savemat(path, {"model": model}, do_compression=True)

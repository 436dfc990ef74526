"""Stand-in model files that tests build in exactly the format the real loaders expect.

Nothing made from these is a real metric value: they exercise loaders, regressions and the paths through the
CLI, and the tests that use them say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

FOREST_FIELDS = ("lDau", "rDau", "nodestatus", "nrnodes", "upper", "avnode", "mbest", "ndtree", "ntree")
NRQM_GROUP_SIZES = (18, 45, 75)


def random_forest(rng: np.random.Generator, n_features: int, n_tree: int = 3, depth: int = 3) -> dict[str, Any]:
    """Full binary trees in randomForest's layout (nodes × trees, 1-based, 0 = terminal); node order shuffled
    so that daughters are not simply 2k+1, 2k+2."""
    n_nodes = 2 ** (depth + 1) - 1
    n_internal = 2**depth - 1
    out: dict[str, Any] = {
        "lDau": np.zeros((n_nodes, n_tree), np.int32), "rDau": np.zeros((n_nodes, n_tree), np.int32),
        "nodestatus": np.full((n_nodes, n_tree), -1, np.int32), "nrnodes": np.array([[n_nodes]], np.int32),
        "upper": np.zeros((n_nodes, n_tree)), "avnode": rng.uniform(0, 10, (n_nodes, n_tree)),
        "mbest": np.zeros((n_nodes, n_tree), np.int32), "ndtree": np.full((n_tree, 1), n_nodes, np.int32),
        "ntree": np.array([[n_tree]], np.int32),
    }
    for t in range(n_tree):
        slot = np.concatenate([[0], 1 + rng.permutation(n_nodes - 1)])  # heap node -> stored row, root first
        for k in range(n_internal):
            row = slot[k]
            out["lDau"][row, t] = slot[2 * k + 1] + 1
            out["rDau"][row, t] = slot[2 * k + 2] + 1
            out["nodestatus"][row, t] = -3
            out["mbest"][row, t] = rng.integers(n_features) + 1
            out["upper"][row, t] = rng.normal()
    return out


def save_nrqm_model(
    path: Path,
    forests: list[dict[str, Any]],
    linear: np.ndarray,
    *,
    cell_shape: tuple[int, int] = (1, 3),
    drop: str | None = None,
) -> None:
    """Write `model` as MATLAB would save the authors' struct: model.rf = cell of regRF structs,
    model.linear = 4×1. `drop` leaves out one field (a model field or a forest field)."""
    cell = np.empty(cell_shape, dtype=object)
    for i, forest in enumerate(forests):
        fields = [k for k in FOREST_FIELDS if k != drop]
        rec = np.empty((1, 1), dtype=[(k, object) for k in fields])
        for k in fields:
            rec[0, 0][k] = forest[k]
        cell.reshape(-1)[i] = rec
    top = [k for k in ("rf", "linear") if k != drop]
    model = np.empty((1, 1), dtype=[(k, object) for k in top])
    if "rf" in top:
        model[0, 0]["rf"] = cell
    if "linear" in top:
        model[0, 0]["linear"] = linear
    scipy.io.savemat(path, {"model": model})



def standin_nrqm_model(path: Path, seed: int = 0) -> Path:
    """A small random NRQM model file (3 forests over the 18/45/75 features, linear weights) at `path`."""
    rng = np.random.default_rng(seed)
    forests = [random_forest(rng, n) for n in NRQM_GROUP_SIZES]
    save_nrqm_model(path, forests, np.array([[1.0], [0.3], [0.3], [0.3]]))
    return path


#: torchvision vgg19 `features` conv layers: (index in the Sequential, in channels, out channels).
VGG19_CONVS = (
    (0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
    (16, 256, 256), (19, 256, 512), (21, 512, 512), (23, 512, 512), (25, 512, 512), (28, 512, 512),
    (30, 512, 512), (32, 512, 512), (34, 512, 512),
)


def standin_vgg19(path: Path, seed: int = 0) -> Path:
    """A VGG19 checkpoint with torchvision's `features.*` names and shapes and random (He-scaled) weights, plus a
    tiny classifier. Its checksum cannot match the real file: loaders must be told it is unverified."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    state: dict[str, Any] = {}
    for index, cin, cout in VGG19_CONVS:
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * (2 / (9 * cin)) ** 0.5
        state[f"features.{index}.bias"] = torch.zeros(cout)
    state["classifier.0.weight"] = torch.zeros(1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path

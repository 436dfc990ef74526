"""Validation during training: the generator being trained, scored by the benchmark path itself.

The in-memory generator becomes a `NetworkMethod` and runs through `run_benchmarks` with the recipe's protocol
(scale, degradation) and sreval's PSNR and SSIM, so a training curve's numbers are the ones `run-benchmarks` gives
the exported weights, not a second implementation of LR, rounding, Y and the metrics that could drift from it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sreval.benchmark.cache import Cache
from sreval.benchmark.runner import run_benchmarks
from sreval.datasets.registry import get_dataset
from sreval.methods.network import NetworkMethod
from sreval.metrics import create_metric
from sreval.protocol import Protocol
from sreval.train.devices import unwrap
from sreval.train.recipes import Recipe

#: The metrics of validation.csv (on Y with the border shaved, as the protocol says).
METRICS = ("psnr", "ssim")


def validate(generator: nn.Module, recipe: Recipe, data_root: Path, device: torch.device) -> list[dict[str, Any]]:
    """PSNR/SSIM of the generator on the recipe's validation sets, one row per set: dataset, psnr, ssim (means
    over the set) and n (images).

    An output that is not finite or far outside [0, 1] is a `SrevalError` naming the image (`check_output`): a
    NaN (e.g. from BatchNorm statistics that only evaluation mode uses) must stop the run, not become a PSNR of
    clamped garbage in validation.csv. The generator is given back in the mode it had."""
    protocol = Protocol(scale=recipe.scale, degradation=recipe.degradation)
    method = NetworkMethod(unwrap(generator), f"{recipe.name} (validation)", scale=recipe.scale)
    datasets = [get_dataset(key) for key in recipe.validation_sets]
    metrics = [create_metric(name, protocol) for name in METRICS]
    # Nothing is cached: the weights change between validations, and the outputs are not wanted afterwards.
    cache = Cache(Path(tempfile.gettempdir()) / "sreval-validation", enabled=False)
    result = run_benchmarks(
        [method],
        datasets,
        metrics,
        protocol=protocol,
        data_root=data_root,
        cache=cache,
        device=device,
        command="train validation",
        progress=False,
    )
    means: dict[tuple[str, str], float] = {}
    counts: dict[str, int] = {}
    for record in result.summary.to_dict("records"):
        means[str(record["dataset"]), str(record["metric"])] = float(record["mean"])
        counts[str(record["dataset"])] = int(record["n"])
    return [
        {"dataset": d.key, **{name: means[d.key, name] for name in METRICS}, "n": counts[d.key]} for d in datasets
    ]

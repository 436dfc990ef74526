"""A small real benchmark run for the runner's tests: bicubic and NN, PSNR/SSIM/RMSE/NIQE, a fresh SQLite store
and cache under the test's folder."""

from __future__ import annotations

from pathlib import Path

import torch

from sreval.benchmark.cache import Cache
from sreval.benchmark.runner import BenchmarkResult, run_benchmarks
from sreval.datasets.registry import parse_datasets
from sreval.methods.baselines import Bicubic, NearestNeighbour
from sreval.metrics import parse_metrics
from sreval.protocol import Protocol
from sreval.results import open_store

METRICS = ["psnr", "ssim", "rmse", "niqe"]


def run_baselines(
    tmp: Path, data_root: Path, workers: int | None, datasets: tuple[str, ...] = ("set5",)
) -> BenchmarkResult:
    protocol = Protocol()
    store = open_store(f"sqlite:///{tmp / 'results.db'}")
    try:
        return run_benchmarks(
            [Bicubic(), NearestNeighbour()], parse_datasets(list(datasets)), parse_metrics(METRICS, protocol),
            protocol=protocol, data_root=data_root, cache=Cache(tmp / "cache", metric_store=store),
            device=torch.device("cpu"), progress=False, workers=workers,
        )  # fmt: skip
    finally:
        store.close()

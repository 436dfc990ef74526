"""The benchmark loop: datasets × images × methods → SR image (cached) → metrics (cached) → tables.

Loop order is dataset, image, method so that each HR image is read, verified and degraded once.
Nothing is stored until everything has been computed: the caller saves the finished run in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from sreval import __version__
from sreval.benchmark.cache import Cache
from sreval.datasets.registry import Dataset, load_hr, require_files
from sreval.imageio import pixels_sha256, to_tensor
from sreval.methods.base import Method, MethodInput
from sreval.metrics import Metric, score_all
from sreval.protocol import Protocol
from sreval.provenance import describe_device, git_commit
from sreval.results import ImageRecord, MethodRecord, RunRecord, ValueRecord

log = logging.getLogger(__name__)


@dataclass
class Counts:
    sr_computed: int = 0
    sr_cached: int = 0
    sr_read: int = 0  # outputs read from a folder method's files
    metrics_computed: int = 0
    metrics_cached: int = 0


@dataclass
class BenchmarkResult:
    per_image: pd.DataFrame  # method, dataset, image, metric, value
    summary: pd.DataFrame  # method, dataset, metric, mean, n
    record: RunRecord
    counts: Counts
    timings: dict[str, float] = field(default_factory=dict)


def summarise(per_image: pd.DataFrame, aggregates: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Set values per method, dataset and metric: the mean of per-image values (not, e.g., the PSNR of the mean
    MSE), or for "rms" metrics sqrt(mean(value²)) (RMSE over a set = sqrt of the mean per-image MSE)."""
    if per_image.empty:
        return pd.DataFrame(columns=["method", "dataset", "metric", "mean", "n"])
    rms = {m for m, how in (aggregates or {}).items() if how == "rms"}
    values = per_image["value"].where(~per_image["metric"].isin(rms), per_image["value"] ** 2)
    grouped = values.groupby([per_image["method"], per_image["dataset"], per_image["metric"]], sort=False)
    summary = grouped.agg(mean="mean", n="count").reset_index()
    is_rms = summary["metric"].isin(rms)
    summary.loc[is_rms, "mean"] = np.sqrt(summary.loc[is_rms, "mean"])
    return summary


def run_benchmarks(
    methods: Sequence[Method],
    datasets: Sequence[Dataset],
    metrics: Sequence[Metric],
    *,
    protocol: Protocol,
    data_root: Path,
    cache: Cache,
    device: torch.device,
    command: str = "run-benchmarks",
    progress: bool = True,
) -> BenchmarkResult:
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    counts = Counts()
    timings = {"load": 0.0, "sr": 0.0, "metrics": 0.0}
    rows: list[tuple[str, str, str, str, float]] = []
    images: list[ImageRecord] = []

    require_files(list(datasets), data_root)
    plan = [(d, {m.name: {e.name for e in m.images(d)} for m in methods}) for d in datasets]
    total = sum(len(names) for _, per_method in plan for names in per_method.values())
    bar = tqdm(total=total, desc="benchmark", unit="img", disable=not progress, leave=False)
    for dataset, per_method in plan:
        for entry in dataset.images:
            wanted = [m for m in methods if entry.name in per_method[m.name]]
            if not wanted:
                continue
            tick = time.perf_counter()
            hr = load_hr(entry, data_root)
            images.append(ImageRecord(dataset.key, entry.name, hr.sha256))
            hr_tensor = to_tensor(hr.pixels).to(device)
            item = MethodInput(dataset, entry, hr, protocol, device)
            timings["load"] += time.perf_counter() - tick
            for method in wanted:
                bar.set_postfix_str(f"{dataset.key}/{entry.name} {method.name}", refresh=False)
                tick = time.perf_counter()
                sr = _output(method, item, cache, protocol, counts)
                timings["sr"] += time.perf_counter() - tick
                tick = time.perf_counter()
                values = _scores(sr, hr.sha256, hr_tensor, metrics, cache, counts)
                timings["metrics"] += time.perf_counter() - tick
                rows.extend((method.name, dataset.key, entry.name, k, v) for k, v in values.items())
                bar.update()
    bar.close()

    per_image = pd.DataFrame(rows, columns=["method", "dataset", "image", "metric", "value"])
    timings["total"] = time.perf_counter() - t0
    record = RunRecord(
        command=command,
        started_at=started,
        finished_at=datetime.now(UTC),
        sreval_version=__version__,
        git_commit=git_commit(),
        protocol=protocol.as_dict(),
        device=describe_device(device),
        timings=timings,
        dataset_checksums={d.key: d.checksum for d in datasets},
        methods=[MethodRecord(m.name, m.stored_identity(), m.stored_metadata()) for m in methods],
        images=images,
        values=[ValueRecord(*row) for row in rows],
    )
    aggregates = {m.info.name: m.info.aggregate for m in metrics}
    return BenchmarkResult(per_image, summarise(per_image, aggregates), record, counts, timings)


def _output(method: Method, item: MethodInput, cache: Cache, protocol: Protocol, counts: Counts) -> np.ndarray:
    if not method.computes_output:
        counts.sr_read += 1
        return method.super_resolve(item)
    key = Cache.sr_key(method.identity(), item.hr.sha256, protocol.key())
    cached = cache.get_sr(key)
    if cached is not None:
        counts.sr_cached += 1
        return cached
    sr = method.super_resolve(item)
    cache.put_sr(key, sr)
    counts.sr_computed += 1
    return sr


def _scores(
    sr: np.ndarray, hr_sha256: str, hr: torch.Tensor, metrics: Sequence[Metric], cache: Cache, counts: Counts
) -> dict[str, float]:
    key = Cache.pair_key(pixels_sha256(sr), hr_sha256)
    known = cache.get_metrics(key)
    values = {m.info.name: known[m.cache_key] for m in metrics if m.cache_key in known}
    counts.metrics_cached += len(values)
    missing = [m for m in metrics if m.cache_key not in known]
    fresh: dict[str, float] = {}
    if missing:
        scores = score_all(missing, to_tensor(sr).to(hr.device), hr)
        for metric in missing:
            values[metric.info.name] = fresh[metric.cache_key] = float(scores[metric.info.name][0])
        counts.metrics_computed += len(missing)
    if fresh:
        cache.put_metrics(key, fresh)
    return {m.info.name: values[m.info.name] for m in metrics}  # stable column order, cached or not

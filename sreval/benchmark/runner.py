"""The benchmark loop: datasets × images × methods → SR image → metrics (both through the evaluation path,
`sreval.benchmark.evaluate`, and its caches) → tables.

The unit of work is one HR image with its methods, so that each HR image is read, verified and degraded once;
images are processed a few at once, by worker processes on the CPU and threads elsewhere (`sreval.benchmark.pool`).
Nothing is stored until everything has been computed: the caller saves the finished run in one transaction.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sreval import __version__
from sreval import progress as progress_lines
from sreval.benchmark import pool
from sreval.benchmark.cache import Cache
from sreval.benchmark.evaluate import Source, evaluate_output, method_input, timed_apart
from sreval.datasets.registry import Dataset, ImageEntry, load_hr, require_files
from sreval.errors import ParameterError
from sreval.imageio import to_tensor
from sreval.methods.base import Method
from sreval.metrics import Metric
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

    def count(self, source: Source) -> None:
        if source is Source.COMPUTED:
            self.sr_computed += 1
        elif source is Source.CACHED:
            self.sr_cached += 1
        else:
            self.sr_read += 1

    def add(self, other: Counts) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def add_timings(into: dict[str, float], other: Mapping[str, float]) -> None:
    """Phase times summed by name (over the images of a share, over the shares of a run); new phases at the end."""
    for phase, seconds in other.items():
        into[phase] = into.get(phase, 0.0) + seconds


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


@dataclass(frozen=True)
class WorkItem:
    """One HR image and the methods to run on it: the unit of work a process takes (its HR is read once)."""

    index: int  # position in the single-process order
    dataset: Dataset
    entry: ImageEntry
    methods: tuple[Method, ...]


@dataclass
class ItemResult:
    image: ImageRecord
    rows: list[tuple[str, str, str, str, float]]  # method, dataset, image, metric, value


@dataclass
class Share:
    """What one process computed: its items' results by work index, with its counts and phase timings."""

    items: dict[int, ItemResult] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    timings: dict[str, float] = field(default_factory=dict)


def plan_work(methods: Sequence[Method], datasets: Sequence[Dataset]) -> list[WorkItem]:
    """Every (HR image, methods wanting it) in dataset, image order; images no method wants are left out."""
    work: list[WorkItem] = []
    for dataset in datasets:
        per_method = {m.name: {e.name for e in m.images(dataset)} for m in methods}
        for entry in dataset.images:
            wanted = tuple(m for m in methods if entry.name in per_method[m.name])
            if wanted:
                work.append(WorkItem(len(work), dataset, entry, wanted))
    return work


#: The phases of a share's timings, in the order they happen to an image; metrics that are not PSNR/SSIM/RMSE
#: (NIQE, Ma, ...) follow as phases of their own, named after the metric, and `finish` adds `total`.
PHASES = ("decode", "lr", "sr", "encode", "metrics")


def default_workers(device: torch.device) -> int:
    """Images scored at once: one per usable core on the CPU (each with one torch thread, which on a busy
    machine is far faster than torch's threads, whose barriers wait for descheduled cores), one on an accelerator."""
    return min(len(os.sched_getaffinity(0)), 8) if device.type == "cpu" else 1


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class _Done:
    """One item's results with its own counts and phase times (workers keep no shared state)."""

    result: ItemResult
    counts: Counts
    timings: dict[str, float]


def _compute_item(
    item: WorkItem, metrics: Sequence[Metric], protocol: Protocol, data_root: Path, cache: Cache, device: torch.device
) -> _Done:
    counts, timings = Counts(), phase_timings(metrics)
    tick = time.perf_counter()
    hr = load_hr(item.entry, data_root)
    hr_tensor = to_tensor(hr.pixels).to(device)
    timings["decode"] += time.perf_counter() - tick
    inputs = method_input(item.dataset, item.entry, hr, protocol, device, timings=timings)
    reference_planes: dict[object, torch.Tensor] = {}  # the HR's luma plane, made once for all methods
    rows: list[tuple[str, str, str, str, float]] = []
    with cache.batched_writes():
        for method in item.methods:
            scores, source = evaluate_output(
                method, inputs, hr_tensor, metrics, cache, timings=timings, reference_planes=reference_planes
            )
            counts.count(source)
            counts.metrics_cached += scores.cached
            counts.metrics_computed += scores.computed
            rows.extend((method.name, item.dataset.key, item.entry.name, k, v) for k, v in scores.values.items())
        tick = time.perf_counter()
    timings["metrics"] += time.perf_counter() - tick  # writing the image's values to the metric cache
    return _Done(ItemResult(ImageRecord(item.dataset.key, item.entry.name, hr.sha256), rows), counts, timings)


def phase_timings(metrics: Sequence[Metric]) -> dict[str, float]:
    """Zeroed phase times in their order: `PHASES`, then one per metric that is timed on its own."""
    return dict.fromkeys([*PHASES, *timed_apart(metrics)], 0.0)


def compute_share(
    work: Sequence[WorkItem],
    metrics: Sequence[Metric],
    *,
    protocol: Protocol,
    data_root: Path,
    cache: Cache,
    device: torch.device,
    bar: progress_lines.Progress,
    workers: int | None = None,
) -> Share:
    """SR images and metric values of `work` (all of it, or one process's part).

    `workers` images are processed at once (default `default_workers`), each worker with an equal part of the
    cores as torch threads; the first image is done alone, so that a method that loads its model on first use
    loads it once. The bar advances by an image's methods when the image is done. Phase times are seconds of
    work summed over the workers (as over the shares of a sharded run): with one worker they add up to less
    than the run's total; with several they can add up to more."""
    if workers is not None and workers < 1:
        raise ParameterError("workers", f"workers must be at least 1, got {workers}")
    share = Share(timings=phase_timings(metrics))
    n = min(workers or default_workers(device), max(len(work), 1))
    cores = len(os.sched_getaffinity(0))

    def merge(done: _Done, item: WorkItem) -> None:
        share.items[item.index] = done.result
        share.counts.add(done.counts)
        add_timings(share.timings, done.timings)
        bar.update(len(item.methods))

    def run(item: WorkItem) -> _Done:
        return _compute_item(item, metrics, protocol, data_root, cache, device)

    threads = max(1, cores // n)
    with _torch_threads(threads):
        for item in work[:1]:
            merge(run(item), item)
        rest = work[1:]
        if n == 1:
            for item in rest:
                merge(run(item), item)
        elif (why := pool.fork_blocker(device, cache.metric_store)) is None:
            after_fork = getattr(cache.metric_store, "after_fork", None)
            pool.in_processes(rest, n, run, merge, torch_threads=threads, after_fork=after_fork)
        else:
            log.debug("benchmark workers are threads: %s", why)
            pool.in_threads(rest, n, run, merge)
    return share


def finish(
    shares: Sequence[Share],
    methods: Sequence[Method],
    datasets: Sequence[Dataset],
    metrics: Sequence[Metric],
    *,
    protocol: Protocol,
    device: torch.device,
    command: str,
    started: datetime,
    elapsed: float,
) -> BenchmarkResult:
    """One run from the shares of all processes: results in the single-process order, counts and timings summed."""
    items = {index: result for share in shares for index, result in share.items.items()}
    ordered = [items[index] for index in sorted(items)]
    rows = [row for result in ordered for row in result.rows]
    counts = Counts()
    timings: dict[str, float] = {}
    for share in shares:
        counts.add(share.counts)
        add_timings(timings, share.timings)
    timings["total"] = elapsed
    per_image = pd.DataFrame(rows, columns=["method", "dataset", "image", "metric", "value"])
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
        images=[result.image for result in ordered],
        values=[ValueRecord(*row) for row in rows],
    )
    aggregates = {m.info.name: m.info.aggregate for m in metrics}
    return BenchmarkResult(per_image, summarise(per_image, aggregates), record, counts, timings)


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
    workers: int | None = None,
) -> BenchmarkResult:
    """Every method on every image of `datasets`, scored by `metrics`. `progress`: a bar on a terminal, a plain
    line every few seconds elsewhere (`sreval.progress`), nothing when False. `workers`: see `compute_share`."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    require_files(list(datasets), data_root)
    work = plan_work(methods, datasets)
    total = sum(len(item.methods) for item in work)
    # The interval is read when the run starts, so that a test can shorten it.
    bar = progress_lines.Progress(total, "benchmark", "img", enabled=progress, interval=progress_lines.LINE_INTERVAL_S)
    share = compute_share(
        work, metrics, protocol=protocol, data_root=data_root, cache=cache, device=device, bar=bar, workers=workers
    )
    bar.close()
    return finish(
        [share], methods, datasets, metrics,
        protocol=protocol, device=device, command=command, started=started, elapsed=time.perf_counter() - t0,
    )  # fmt: skip

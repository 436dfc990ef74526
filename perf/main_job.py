"""The main job, cold and warm: the README's quick start (`sreval run-benchmarks` with its defaults: methods
bicubic,nn on Set5, Set14, BSD100 and Urban100, metrics psnr,ssim,rmse,niqe) timed phase by phase, next to the
time of decoding the four sets' HR PNGs alone, measured in the same process.

    python perf/main_job.py [--data-root DIR] [--workers N] [--datasets set5,...] [--metrics psnr,...] [--no-warm]
                            [--also-threads]

The cold run starts from an empty SR cache, an empty results store (so an empty metric cache) and an empty out
folder, all in a fresh temporary folder; the warm run repeats it with everything cached. Each prints its phases
(seconds of work, summed over the workers), the total wall time (the run and saving it), the HR-decode time, the
ratio total / decode, and the total less NIQE's share of the work (NIQE's own speed is measured elsewhere).
`--also-threads` adds a cold run whose workers are threads (as they are where forking is unsafe) in a fresh
folder, and the ratio of the two totals. Target: cold total <= 20 s on a quiet 2-core machine. Run it when the
machine is quiet (the load average is printed with the figures): on a busy one every figure is larger.
NIQE's compiled kernels are cached on disk by numba after their first run; the first run ever on a machine also
compiles them (about 3 s), which NUMBA_CACHE_DIR set to an empty folder shows.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from sreval import settings
from sreval.benchmark import pool
from sreval.benchmark.cache import Cache
from sreval.benchmark.runner import BenchmarkResult, default_workers, run_benchmarks
from sreval.datasets.registry import Dataset, load_hr, parse_datasets
from sreval.methods.specs import parse_methods
from sreval.metrics import parse_metrics
from sreval.metrics.perceptual import PLANE_METRICS
from sreval.protocol import Protocol
from sreval.results import open_store


def decode_hr(datasets: list[Dataset], data_root: Path) -> float:
    """Seconds to read, verify and decode every HR image once, one after the other."""
    start = time.perf_counter()
    for dataset in datasets:
        for entry in dataset.images:
            load_hr(entry, data_root)
    return time.perf_counter() - start


def main_job(folder: Path, datasets: list[Dataset], metric_names: list[str], workers: int | None) -> BenchmarkResult:
    """One run as `sreval run-benchmarks` makes it, saved to the store under `folder`; its total includes saving."""
    protocol = Protocol()
    start = time.perf_counter()
    metrics = parse_metrics(metric_names, protocol)
    methods = parse_methods(["bicubic", "nn"])
    store = open_store(f"sqlite:///{folder / 'results.db'}")
    try:
        result = run_benchmarks(
            methods, datasets, metrics,
            protocol=protocol, data_root=settings.data_root(), cache=Cache(folder / "cache", metric_store=store),
            device=torch.device("cpu"), progress=False, workers=workers,
        )  # fmt: skip
        tick = time.perf_counter()
        store.save_run(result.record)
        result.timings["store"] = time.perf_counter() - tick
    finally:
        store.close()
    out = folder / "out"
    out.mkdir(exist_ok=True)
    result.per_image.to_csv(out / "per_image.csv", index=False)
    result.summary.to_csv(out / "summary.csv", index=False)
    result.timings["total"] = time.perf_counter() - start
    return result


def report(label: str, result: BenchmarkResult, decode_s: float) -> None:
    t = result.timings
    phases = "  ".join(f"{k} {v:6.2f}" for k, v in t.items() if k != "total")
    work = sum(v for k, v in t.items() if k != "total")
    print(f"{label}: {phases}")
    # Phases are work summed over the workers, so NIQE's part of the wall time is its part of the work.
    without_niqe = t["total"] * (1 - t.get("niqe", 0.0) / work) if work else t["total"]
    print(
        f"{label}: total {t['total']:.2f} s (phases sum {work:.2f} s of work), {len(result.per_image)} values; "
        f"total / HR decode = {t['total'] / decode_s:.2f}; without NIQE's share of the work: {without_niqe:.2f} s"
    )


@contextmanager
def _worker_threads() -> Iterator[None]:
    """Benchmark workers as threads inside the block, as `sreval.benchmark.pool` makes them where forking is unsafe."""
    real = pool.fork_blocker
    pool.fork_blocker = lambda device, metric_store: "threads, for comparison"
    try:
        yield
    finally:
        pool.fork_blocker = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, help="default: the configured data root")
    parser.add_argument("--workers", type=int, help="images at once (default: one per core)")
    parser.add_argument("--datasets", default="set5,set14,bsd100,urban100")
    parser.add_argument("--metrics", default=",".join(PLANE_METRICS))
    parser.add_argument("--no-warm", action="store_true", help="skip the warm run")
    parser.add_argument("--also-threads", action="store_true", help="a cold run with worker threads too")
    args = parser.parse_args()
    if args.data_root:
        os.environ["SREVAL_DATA_ROOT"] = str(args.data_root.resolve())
    datasets = parse_datasets(args.datasets.split(","))
    names = args.metrics.split(",")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; cores {len(os.sched_getaffinity(0))}; "
          f"workers {args.workers or default_workers(torch.device('cpu'))}")  # fmt: skip
    decode_s = decode_hr(datasets, settings.data_root())
    print(f"HR decode alone: {decode_s:.2f} s")
    with tempfile.TemporaryDirectory(prefix="sreval-main-job-") as tmp:
        cold = main_job(Path(tmp), datasets, names, args.workers)
        report("cold", cold, decode_s)
        if not args.no_warm:
            warm = main_job(Path(tmp), datasets, names, args.workers)
            report("warm", warm, decode_s)
            if not warm.per_image.equals(cold.per_image):
                raise SystemExit("the warm run's values differ from the cold run's")
    if args.also_threads:
        with tempfile.TemporaryDirectory(prefix="sreval-main-job-") as tmp, _worker_threads():
            threads = main_job(Path(tmp), datasets, names, args.workers)
        report("cold, worker threads", threads, decode_s)
        print(f"cold total, threads / processes: {threads.timings['total'] / cold.timings['total']:.2f}")
        if not threads.per_image.equals(cold.per_image):
            raise SystemExit("the run with worker threads gives other values")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")


if __name__ == "__main__":
    main()

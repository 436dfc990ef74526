"""`sreval run-benchmarks`, `evaluate`, `runs` and `plot pd`: scoring methods and looking at the scores."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sreval import settings
from sreval.cli.common import (
    ALL_DATASETS,
    DB_HELP,
    Subcommands,
    add_inference_options,
    add_run_options,
    asset_paths,
    inference_options,
    save_timed,
    split_list,
    write_results,
)
from sreval.errors import SrevalError

if TYPE_CHECKING:
    from sreval.benchmark.runner import BenchmarkResult
    from sreval.datasets.registry import Dataset
    from sreval.methods.base import Method

log = logging.getLogger("sreval")


def add_commands(sub: Subcommands) -> None:
    bench = sub.add_parser("run-benchmarks", help="methods × datasets × metrics → CSV + results store")
    bench.add_argument("--methods", default="bicubic,nn", help="e.g. bicubic,nn,folder:PATH (default: bicubic,nn)")
    bench.add_argument("--datasets", default=ALL_DATASETS, help="default: all four sets")
    add_inference_options(bench)
    add_run_options(bench)
    bench.set_defaults(func=cmd_run_benchmarks)

    ev = sub.add_parser("evaluate", help="score a folder of your own SR outputs against one dataset")
    ev.add_argument("--sr", required=True, type=Path, help="folder of SR images (matched to HR by file name)")
    ev.add_argument("--dataset", required=True, help="set5, set14, bsd100 or urban100")
    ev.add_argument("--name", help="method name in the tables (default: the folder's name)")
    add_run_options(ev)
    ev.set_defaults(func=cmd_evaluate)

    plot = sub.add_parser("plot", help="figures from a run's results")
    plot_sub = plot.add_subparsers(dest="plot_command", required=True, metavar="FIGURE")
    pd_plot = plot_sub.add_parser("pd", help="perception–distortion plane (RMSE vs PI, or NIQE) as HTML")
    pd_plot.add_argument("--results", required=True, type=Path, help="a run's --out folder (its summary.csv)")
    pd_plot.add_argument("--out", type=Path, default=Path("reports/pd_plane.html"),
                         help="HTML file to write (default: reports/pd_plane.html)")
    pd_plot.set_defaults(func=cmd_plot_pd)

    runs = sub.add_parser("runs", help="list runs in the results store")
    runs.add_argument("--db", help=DB_HELP)
    runs.set_defaults(func=cmd_runs)


def format_summary(summary: pd.DataFrame) -> str:
    """Methods × datasets rows, one column per metric mean, plus the image count."""
    if summary.empty:
        return "(no results)"
    table = summary.pivot_table(index=["dataset", "method"], columns="metric", values="mean", sort=False)
    table["n"] = summary.groupby(["dataset", "method"], sort=False)["n"].max()
    from sreval.metrics import metric_info

    def formatter(metric: str) -> Callable[[float], str]:
        places = metric_info(metric).decimals
        return lambda v: f"{v:.{places}f}"

    return table.to_string(formatters={c: formatter(c) for c in table.columns if c != "n"})


def _benchmark(args: argparse.Namespace, methods: list[Method], datasets: list[Dataset], command: str) -> int:
    from sreval.benchmark.cache import Cache
    from sreval.benchmark.distributed import ranks_from_env
    from sreval.benchmark.runner import run_benchmarks
    from sreval.metrics import select_metrics
    from sreval.metrics.perceptual import default_metrics
    from sreval.protocol import Protocol
    from sreval.provenance import resolve_device
    from sreval.results import open_store

    ranks = ranks_from_env()
    protocol = Protocol(degradation=args.degradation, y_mode=args.y_mode)
    files = asset_paths(args.asset)
    names = split_list(args.metrics) if args.metrics else default_metrics(files)
    metrics, unavailable = select_metrics(names, protocol, files)
    for name, reason in unavailable.items():
        if ranks is None or ranks.is_main:
            log.warning("metric %s unavailable: %s", name, reason)
    if not metrics:
        raise SrevalError(f"none of the metrics {','.join(names)!r} can be computed (see above)")
    device = resolve_device(args.device)
    if ranks is not None:
        from sreval.cli.sharded import benchmark_sharded

        run = benchmark_sharded(args, ranks, methods, datasets, metrics, protocol=protocol, device=device,
                                command=command)  # fmt: skip
        if run is not None:
            report(args, *run, unavailable)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)  # fail on a bad --out or database before the long computation
    store = open_store(settings.db_url(args.db))
    try:
        result = run_benchmarks(
            methods, datasets, metrics,
            protocol=protocol,
            data_root=settings.data_root(args.data_root),
            cache=Cache(settings.cache_dir(args.cache_dir), enabled=not args.no_cache, metric_store=store),
            device=device,
            command=command,
            progress=not args.quiet,
            workers=args.workers,
        )  # fmt: skip
        run_id, store_s = save_timed(store, result)
    finally:
        store.close()
    write_results(args, result)
    report(args, result, run_id, store_s, unavailable)
    return 0


def format_timings(timings: dict[str, float], store_s: float) -> list[str]:
    """One line per phase of the run, in the run's order (the keys are the runner's), then storing: seconds and
    share of the total (phases of a sharded run are summed over its processes, so they can pass 100 %)."""
    total = timings.get("total", 0.0)
    phases = {**timings, "store": store_s}
    width = max(len(name) for name in phases)

    def share(seconds: float) -> str:
        return f"{100 * seconds / total:5.1f} %" if total > 0 else "    - %"

    return [f"  {name:<{width}}  {seconds:9.3f} s  {share(seconds)}" for name, seconds in phases.items()]


def report(
    args: argparse.Namespace, result: BenchmarkResult, run_id: int, store_s: float, unavailable: dict[str, str]
) -> None:
    print(format_summary(result.summary))
    for name in unavailable:
        print(f"{name}: unavailable (model file missing: `sreval assets` shows where it was looked for)")
    c = result.counts
    new = c.sr_computed + c.metrics_computed
    print(
        f"\n{'nothing new computed: ' if new == 0 else ''}"
        f"SR images: {c.sr_computed} computed, {c.sr_cached} from cache,"
        f" {c.sr_read} read from folders; metric values: {c.metrics_computed} computed, {c.metrics_cached} from cache."
        f"\nrun {run_id} stored; wrote {args.out / 'per_image.csv'} and {args.out / 'summary.csv'}"
        f" in {result.timings['total']:.1f} s on {result.record.device}"
    )
    if args.phase_times or getattr(args, "verbose", False):
        print("phases (seconds, share of the total):")
        print("\n".join(format_timings(result.timings, store_s)))


def cmd_run_benchmarks(args: argparse.Namespace) -> int:
    from sreval.datasets.registry import parse_datasets
    from sreval.methods.specs import parse_methods

    options, assets = inference_options(args), asset_paths(args.asset)
    methods = parse_methods(split_list(args.methods), options=options, asset_paths=assets)
    return _benchmark(args, methods, parse_datasets(split_list(args.datasets)), "run-benchmarks")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sreval.datasets.registry import get_dataset
    from sreval.methods.folder import Folder

    dataset = get_dataset(args.dataset)
    method = Folder(args.sr, name=args.name)
    if not method.images(dataset):
        raise SrevalError(f"no file in {method.folder_for(dataset)} matches a {dataset.key} image name")
    return _benchmark(args, [method], [dataset], "evaluate")


def cmd_plot_pd(args: argparse.Namespace) -> int:
    from sreval.report.pd_plane import load_summary, pd_figure, write_html

    path = write_html(pd_figure(load_summary(args.results)), args.out)
    print(f"wrote {path}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from sreval.results import open_store

    store = open_store(settings.db_url(args.db))
    try:
        runs = store.list_runs()
    finally:
        store.close()
    print(runs.to_string(index=False) if not runs.empty else "(no runs stored)")
    return 0

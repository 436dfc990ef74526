"""`sreval` command line: a thin shell over the library (argument parsing, progress, printing, exit codes)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from sreval import __version__, settings
from sreval.errors import SrevalError
from sreval.fileutil import atomic_open

if TYPE_CHECKING:
    from sreval.bench.methods import Method
    from sreval.data.datasets import Dataset

log = logging.getLogger("sreval")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="folder holding Set5/HR, Set14/HR, ... (default: $SREVAL_DATA_ROOT)")
    p.add_argument("--db", help="results database URL (default: $SREVAL_DB or an SQLite file)")
    p.add_argument("--cache-dir", help="SR/metric cache folder (default: $SREVAL_CACHE or ~/.cache/sreval)")
    p.add_argument("--no-cache", action="store_true", help="recompute everything (the cache is not read or written)")
    p.add_argument("--metrics", default="psnr,ssim", help="comma-separated metrics (default: psnr,ssim)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--asset", action="append", default=[], metavar="NAME=PATH",
                   help="model file for an asset (niqe, nrqm), before SREVAL_ASSETS and the cache; repeatable")
    p.add_argument("--degradation", default="uint8", choices=["uint8", "double"],
                   help="MATLAB bicubic LR variant: uint8 (EDSR/SwinIR sets, default) or double (BasicSR/ESRGAN)")
    p.add_argument("--y-mode", default="matlab", choices=["matlab", "float"],
                   help="Y channel: MATLAB's rounded uint8 Y (published tables, default) or unrounded float")
    p.add_argument("--out", required=True, type=Path, help="folder for per_image.csv and summary.csv")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sreval", description="Evaluation suite for ×4 single-image SR.")
    parser.add_argument("--version", action="version", version=f"sreval {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = sub.add_parser("run-benchmarks", help="methods × datasets × metrics → CSV + results store")
    bench.add_argument("--methods", default="bicubic,nn", help="e.g. bicubic,nn,folder:PATH (default: bicubic,nn)")
    bench.add_argument("--datasets", default="set5,set14,bsd100,urban100", help="default: all four sets")
    _add_common(bench)
    bench.set_defaults(func=cmd_run_benchmarks)

    ev = sub.add_parser("evaluate", help="score a folder of your own SR outputs against one dataset")
    ev.add_argument("--sr", required=True, type=Path, help="folder of SR images (matched to HR by file name)")
    ev.add_argument("--dataset", required=True, help="set5, set14, bsd100 or urban100")
    ev.add_argument("--name", help="method name in the tables (default: the folder's name)")
    _add_common(ev)
    ev.set_defaults(func=cmd_evaluate)

    data = sub.add_parser("data", help="verify or download the benchmark sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    verify = data_sub.add_parser("verify", help="check every file against the shipped checksums")
    download = data_sub.add_parser("download", help="fetch the sets from a public mirror (needs network)")
    for p in (verify, download):
        p.add_argument("--datasets", default="set5,set14,bsd100,urban100")
        p.add_argument("--data-root", help="folder holding Set5/HR, ... (default: $SREVAL_DATA_ROOT)")
    download.add_argument("--mirror", help="base URL of a mirror with SelfExSR's layout")
    verify.set_defaults(func=cmd_data_verify)
    download.set_defaults(func=cmd_data_download)

    assets = sub.add_parser("assets", help="list model parameter files (NIQE, NRQM, VGG19) or install one")
    assets_sub = assets.add_subparsers(dest="assets_command", metavar="ACTION")
    add = assets_sub.add_parser("add", help="install a local file as an asset (checksum verified when known)")
    add.add_argument("name", help="asset name (see `sreval assets`)")
    add.add_argument("path", type=Path)
    assets.set_defaults(func=cmd_assets)

    plot = sub.add_parser("plot", help="figures from a run's results")
    plot_sub = plot.add_subparsers(dest="plot_command", required=True, metavar="FIGURE")
    pd_plot = plot_sub.add_parser("pd", help="perception–distortion plane (RMSE vs PI, or NIQE) as HTML")
    pd_plot.add_argument("--results", required=True, type=Path, help="a run's --out folder (its summary.csv)")
    pd_plot.add_argument("--out", type=Path, default=Path("reports/pd_plane.html"),
                         help="HTML file to write (default: reports/pd_plane.html)")
    pd_plot.set_defaults(func=cmd_plot_pd)

    runs = sub.add_parser("runs", help="list runs in the results store")
    runs.add_argument("--db", help="results database URL (default: $SREVAL_DB or an SQLite file)")
    runs.set_defaults(func=cmd_runs)
    return parser


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    """Atomic: a reader never sees half a file, an interrupted run never leaves one."""
    with atomic_open(path, newline="") as f:
        df.to_csv(f, index=False)  # shortest repr that round-trips every float64


def format_summary(summary: pd.DataFrame) -> str:
    """Methods × datasets rows, one column per metric mean, plus the image count."""
    if summary.empty:
        return "(no results)"
    table = summary.pivot_table(index=["dataset", "method"], columns="metric", values="mean", sort=False)
    table["n"] = summary.groupby(["dataset", "method"], sort=False)["n"].max()
    decimals = {"psnr": 3, "ssim": 4}

    def formatter(metric: str) -> Callable[[float], str]:
        places = decimals.get(metric, 4)
        return lambda v: f"{v:.{places}f}"

    return table.to_string(formatters={c: formatter(c) for c in table.columns if c != "n"})


def _asset_paths(specs: list[str]) -> dict[str, Path]:
    from sreval.assets import get_asset

    paths: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise SrevalError(f"--asset expects NAME=PATH, got {spec!r}")
        paths[get_asset(name.strip()).name] = Path(path).expanduser()
    return paths


def _benchmark(args: argparse.Namespace, methods: list[Method], datasets: list[Dataset], command: str) -> int:
    from sreval.bench.cache import Cache
    from sreval.bench.runner import run_benchmarks
    from sreval.metrics import select_metrics
    from sreval.protocol import Protocol
    from sreval.provenance import resolve_device
    from sreval.store import open_store

    protocol = Protocol(degradation=args.degradation, y_mode=args.y_mode)
    metrics, unavailable = select_metrics(args.metrics, protocol, _asset_paths(args.asset))
    for name, reason in unavailable.items():
        log.warning("metric %s unavailable: %s", name, reason)
    if not metrics:
        raise SrevalError(f"none of the metrics {args.metrics!r} can be computed (see above)")
    device = resolve_device(args.device)
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
            progress=not args.quiet and sys.stderr.isatty(),
        )
        run_id = store.save_run(result.record)
    finally:
        store.close()
    _write_csv(result.per_image, args.out / "per_image.csv")
    _write_csv(result.summary, args.out / "summary.csv")

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
    return 0


def cmd_run_benchmarks(args: argparse.Namespace) -> int:
    from sreval.bench.methods import parse_methods
    from sreval.data.datasets import parse_datasets

    return _benchmark(args, parse_methods(args.methods), parse_datasets(args.datasets), "run-benchmarks")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sreval.bench.methods import Folder
    from sreval.data.datasets import get_dataset

    if not args.sr.is_dir():
        raise SrevalError(f"--sr {args.sr} is not a folder")
    dataset = get_dataset(args.dataset)
    method = Folder(args.sr, name=args.name)
    if not method.images(dataset):
        raise SrevalError(f"no file in {method.folder_for(dataset)} matches a {dataset.key} image name")
    return _benchmark(args, [method], [dataset], "evaluate")


def cmd_data_verify(args: argparse.Namespace) -> int:
    from sreval.data.datasets import parse_datasets, verify

    root = settings.data_root(args.data_root)
    failed = 0
    for dataset in parse_datasets(args.datasets):
        problems = verify(dataset, root)
        failed += len(problems)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"{dataset.key}: {len(dataset.images)} files, {status}")
        for problem in problems:
            print(f"  {problem}")
    if failed:
        raise SrevalError(f"{failed} file(s) under {root} do not match the manifest (see above)")
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sreval.data.datasets import parse_datasets
    from sreval.data.download import DEFAULT_MIRROR, download

    root = settings.data_root(args.data_root)
    for dataset in parse_datasets(args.datasets):
        with tqdm(total=len(dataset.images), desc=dataset.key, unit="file", disable=not sys.stderr.isatty()) as bar:
            fetched = download(dataset, root, mirror=args.mirror or DEFAULT_MIRROR, progress=lambda _: bar.update())
        print(f"{dataset.key}: {fetched} downloaded, {len(dataset.images) - fetched} already present, all verified")
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    from sreval import assets

    if args.assets_command == "add":
        target = assets.add(args.name, args.path)
        print(f"installed {args.name} at {target}")
        return 0
    for asset in assets.ASSETS.values():
        places = assets.search_paths(asset)
        found = next((p for p in places if p.is_file()), None)
        if found is None:
            print(f"{asset.name:<7} missing      {asset.filename}: {asset.description}")
            print(f"        get it from {asset.source}; then `sreval assets add {asset.name} PATH`")
        else:
            print(f"{asset.name:<7} {assets.checksum_status(asset, found):<12} {found}")
        print(f"        looked in: {', '.join(map(str, places))}")
    return 0


def cmd_plot_pd(args: argparse.Namespace) -> int:
    from sreval.report.pd_plane import load_summary, pd_figure, write_html

    path = write_html(pd_figure(load_summary(args.results)), args.out)
    print(f"wrote {path}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from sreval.store import open_store

    store = open_store(settings.db_url(args.db))
    try:
        runs = store.list_runs()
    finally:
        store.close()
    print(runs.to_string(index=False) if not runs.empty else "(no runs stored)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.INFO if args.verbose else logging.WARNING)
    try:
        code: int = args.func(args)
        return code
    except SrevalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder that cannot be written, a disk that is full: the message names the path
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was stored", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""What several commands share: the benchmark options, the inference options, comma lists, `--asset`, CSV files."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import pandas as pd

from sreval.errors import SrevalError
from sreval.fileutil import atomic_open

if TYPE_CHECKING:
    from sreval.benchmark.runner import BenchmarkResult
    from sreval.inference import InferenceOptions
    from sreval.results import Store

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DATA_ROOT_HELP = "folder holding Set5/HR, Set14/HR, ... (default: $SREVAL_DATA_ROOT, then `sreval config` data-root)"
DB_HELP = "results database URL (default: $SREVAL_DB, then `sreval config` db, then an SQLite file)"
DEVICE_HELP = "auto, cpu, cuda or cuda:N (default: auto)"
ALL_DATASETS = "set5,set14,bsd100,urban100"


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of a benchmark run (`run-benchmarks`, `evaluate`): where data, results and cache live, what to
    measure, the protocol's choices, the output folder."""
    p.add_argument("--data-root", help=DATA_ROOT_HELP)
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--cache-dir",
                   help="SR/metric cache folder (default: $SREVAL_CACHE, `sreval config` cache, ~/.cache/sreval)")
    p.add_argument("--no-cache", action="store_true", help="recompute everything (the cache is not read or written)")
    p.add_argument("--metrics", help="comma-separated metrics, e.g. psnr,ssim,pi or pyiqa:lpips (default: "
                   "psnr,ssim,rmse,niqe, plus ma,pi when Ma's model is installed)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--asset", action="append", default=[], metavar="NAME=PATH",
                   help="file for an asset (niqe, nrqm, nrqm-original, enhancenet-pat, esrgan-official, ...: "
                        "`sreval assets` lists them), before SREVAL_ASSETS and the asset folder; repeatable")
    p.add_argument("--degradation", default="uint8", choices=["uint8", "double"],
                   help="MATLAB bicubic LR variant: uint8 (EDSR/SwinIR sets, default) or double (BasicSR/ESRGAN)")
    p.add_argument("--y-mode", default="matlab", choices=["matlab", "float"],
                   help="Y channel: MATLAB's rounded uint8 Y (published tables, default) or unrounded float")
    p.add_argument("--out", required=True, type=Path, help="folder for per_image.csv and summary.csv")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", dest="phase_times", action="store_true",
                   help="also print the time each phase of the run took (as does `sreval -v`)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="images scored at once (default: one per CPU core, 1 on a GPU; under torchrun a machine's "
                        "cores are shared out between its processes)")
    p.add_argument("--dist-timeout", type=float, default=1800.0, metavar="SECONDS",
                   help="under torchrun: how long a process waits for the others (to start, to finish their share)"
                        " before the run fails (default: 1800)")


def add_inference_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("running zoo models (see `sreval zoo list`)")
    g.add_argument("--tile", type=int, default=192,
                   help="LR tile side in pixels; 0 = whole image in one pass (default: 192)")
    g.add_argument("--overlap", type=int, default=16, help="LR pixels of context around each tile (default: 16)")
    g.add_argument("--batch", type=int, default=8, help="tiles per forward pass (default: 8)")
    g.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="fp32 (default), or autocast to bf16/fp16 (faster on GPUs; part of the cache key)")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster on tensor cores)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on large runs)")


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    from sreval.inference import InferenceOptions

    return InferenceOptions(
        tile=args.tile or None, overlap=args.overlap, batch=args.batch, precision=args.precision,
        channels_last=args.channels_last, compile=args.compile,
    )


def split_list(text: str) -> list[str]:
    """The names of a comma-separated option ("set5, set14,"), blanks and empty items left out."""
    return [item.strip() for item in text.split(",") if item.strip()]


def asset_paths(specs: list[str]) -> dict[str, Path]:
    """`--asset NAME=PATH` options as asset name → file."""
    from sreval.assets import get_asset

    paths: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise SrevalError(f"--asset expects NAME=PATH, got {spec!r}")
        paths[get_asset(name.strip()).name] = Path(path).expanduser()
    return paths


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Atomic: a reader never sees half a file, an interrupted run never leaves one."""
    with atomic_open(path, newline="") as f:
        df.to_csv(f, index=False)  # shortest repr that round-trips every float64


def save_timed(store: Store, result: BenchmarkResult) -> tuple[int, float]:
    """The stored run's id and the seconds storing it took."""
    tick = time.perf_counter()
    run_id = store.save_run(result.record)
    return run_id, time.perf_counter() - tick


def write_results(args: argparse.Namespace, result: BenchmarkResult) -> None:
    """A run's per_image.csv and summary.csv in its --out folder."""
    write_csv(result.per_image, args.out / "per_image.csv")
    write_csv(result.summary, args.out / "summary.csv")

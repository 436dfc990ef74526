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
    from sreval import zoo as zoo_module
    from sreval.datasets.registry import Dataset
    from sreval.inference import InferenceOptions
    from sreval.methods.base import Method

log = logging.getLogger("sreval")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="folder holding Set5/HR, Set14/HR, ... (default: $SREVAL_DATA_ROOT)")
    p.add_argument("--db", help="results database URL (default: $SREVAL_DB or an SQLite file)")
    p.add_argument("--cache-dir", help="SR/metric cache folder (default: $SREVAL_CACHE or ~/.cache/sreval)")
    p.add_argument("--no-cache", action="store_true", help="recompute everything (the cache is not read or written)")
    p.add_argument("--metrics", default="psnr,ssim", help="comma-separated metrics (default: psnr,ssim)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--asset", action="append", default=[], metavar="NAME=PATH",
                   help="file for an asset (niqe, nrqm, enhancenet-pat), before SREVAL_ASSETS and the cache; "
                        "repeatable")
    p.add_argument("--degradation", default="uint8", choices=["uint8", "double"],
                   help="MATLAB bicubic LR variant: uint8 (EDSR/SwinIR sets, default) or double (BasicSR/ESRGAN)")
    p.add_argument("--y-mode", default="matlab", choices=["matlab", "float"],
                   help="Y channel: MATLAB's rounded uint8 Y (published tables, default) or unrounded float")
    p.add_argument("--out", required=True, type=Path, help="folder for per_image.csv and summary.csv")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_inference(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("running zoo models (see `sreval zoo list`)")
    g.add_argument("--tile", type=int, default=192,
                   help="LR tile side in pixels; 0 = whole image in one pass (default: 192)")
    g.add_argument("--overlap", type=int, default=16, help="LR pixels of context around each tile (default: 16)")
    g.add_argument("--batch", type=int, default=8, help="tiles per forward pass (default: 8)")
    g.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="fp32 (default), or autocast to bf16/fp16 (faster on GPUs; part of the cache key)")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster on tensor cores)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on large runs)")


def _inference_options(args: argparse.Namespace) -> InferenceOptions:
    from sreval.inference import InferenceOptions

    return InferenceOptions(
        tile=args.tile or None, overlap=args.overlap, batch=args.batch, precision=args.precision,
        channels_last=args.channels_last, compile=args.compile,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sreval", description="Evaluation suite for ×4 single-image SR.")
    parser.add_argument("--version", action="version", version=f"sreval {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bench = sub.add_parser("run-benchmarks", help="methods × datasets × metrics → CSV + results store")
    bench.add_argument("--methods", default="bicubic,nn", help="e.g. bicubic,nn,folder:PATH (default: bicubic,nn)")
    bench.add_argument("--datasets", default="set5,set14,bsd100,urban100", help="default: all four sets")
    _add_inference(bench)
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

    _add_zoo_commands(sub)
    _add_train_commands(sub)
    _add_study_commands(sub)
    _add_analysis_commands(sub)
    _add_report_commands(sub)
    return parser


def _add_zoo_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    zoo_help = "extra zoo folder, searched first (and written to by interpolate); default: $SREVAL_ZOO or the user zoo"
    asset_help = "file for an external-weights asset (e.g. enhancenet-pat=PATH); repeatable"
    zoo = sub.add_parser("zoo", help="model zoo: list entries (with their weights status) or show one")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", metavar="ACTION")
    zoo_list = zoo_sub.add_parser("list", help="every entry: name, architecture, parameters, status, recipe")
    zoo_show = zoo_sub.add_parser("show", help="one entry's config, model card, tensors and checksum status")
    zoo_show.add_argument("name")
    zoo_show.add_argument("--asset", action="append", default=[], metavar="NAME=PATH", help=asset_help)
    zoo_add = zoo_sub.add_parser("add", help="make a zoo entry from a finished `sreval train` run")
    zoo_add.add_argument("run", type=Path, help="the run folder (sreval train ... --out RUN)")
    zoo_add.add_argument("--name", required=True, help="name of the new zoo model")
    zoo_add.add_argument("--overwrite", action="store_true", help="replace a model of the same name")
    for p in (zoo, zoo_list, zoo_show, zoo_add):
        p.add_argument("--zoo", type=Path, default=argparse.SUPPRESS if p is not zoo else None, help=zoo_help)
    zoo.set_defaults(func=cmd_zoo)

    interp = sub.add_parser("interpolate", help="ESRGAN network interpolation θ = (1−α)θ_A + αθ_B of two zoo models")
    interp.add_argument("a", help="zoo model A (α = 0)")
    interp.add_argument("b", help="zoo model B (α = 1), same architecture as A")
    how = interp.add_mutually_exclusive_group(required=True)
    how.add_argument("--alpha", type=float, help="weight of B, in [0, 1] (needs --name)")
    how.add_argument("--sweep", metavar="A1,A2,...",
                     help="several alphas, e.g. 0,0.2,0.4,0.6,0.8,1 (needs --name-prefix)")
    interp.add_argument("--name", help="name of the new zoo model (with --alpha)")
    interp.add_argument("--name-prefix", help="models are named PREFIX-aALPHA (with --sweep)")
    interp.add_argument("--zoo", type=Path, help=zoo_help)
    interp.add_argument("--overwrite", action="store_true", help="replace models of the same name")
    interp.add_argument("--asset", action="append", default=[], metavar="NAME=PATH", help=asset_help)
    interp.set_defaults(func=cmd_interpolate)


def _add_train_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = sub.add_parser("train", help="train an SR model with a paper's recipe (resumes when OUT has checkpoints)")
    train.add_argument("recipe", help="recipe name (`sreval recipes` lists them)")
    train.add_argument("--out", required=True, type=Path, help="run folder: checkpoints, logs, final weights")
    train.add_argument("--steps", type=int, help="total steps (the schedule is scaled to fit)")
    train.add_argument("--config", type=Path, help="YAML file of recipe overrides (unknown keys are errors)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one recipe field, value in YAML (e.g. lr=2e-4, losses={l1: 1}); repeatable")
    train.add_argument("--train-dir", help="folder of HR training images, or a name under $SREVAL_TRAINING_ROOT "
                       "(default: T91)", default="T91")
    train.add_argument("--data-root", help="benchmark data for validation (default: $SREVAL_DATA_ROOT)")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    train.add_argument("--vgg", type=Path, help="VGG19 ImageNet weights (vgg19-dcbb9e9d.pth) for VGG-based losses")
    train.add_argument("--stop-after", type=int, help="stop (with a checkpoint) after N steps of this invocation")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    recipes = sub.add_parser("recipes", help="list training recipes, or show one with every field")
    recipes.add_argument("name", nargs="?")
    recipes.set_defaults(func=cmd_recipes)


def _add_study_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db_help = "database URL (default: $SREVAL_DB or an SQLite file); the study tables live beside the results"
    study = sub.add_parser("study", help="MOS studies (SRGAN protocol): create, invite, status, export, simulate")
    study_sub = study.add_subparsers(dest="study_command", required=True, metavar="ACTION")

    create = study_sub.add_parser("create", help="render a study's stimuli (opaque file names) and store the study")
    create.add_argument("--name", required=True, help="study name (letters, digits, '.', '_', '-')")
    create.add_argument("--methods", required=True,
                        help="methods to rate, e.g. nn,bicubic,hr,folder:PATH,ZOO-MODEL (hr = the reference image)")
    create.add_argument("--datasets", default="set5,set14,bsd100", help="default: set5,set14,bsd100 (as SRGAN)")
    create.add_argument("--images", help="only these images of the datasets, comma-separated (e.g. baby,bird)")
    create.add_argument("--retest", type=float, default=0.1,
                        help="fraction of test items each rater sees twice (default: 0.1)")
    create.add_argument("--min-retest-gap", type=int, default=5,
                        help="fewest positions between the two showings of a retest item (default: 5)")
    create.add_argument("--gold-images", type=int, default=5,
                        help="test images whose HR and NN versions are hidden as attention checks (default: 5)")
    create.add_argument("--calibration-images", type=int, default=20,
                        help="images outside the test set shown first as NN (= 1) and HR (= 5) (default: 20)")
    create.add_argument("--calibration-dir",
                        help="folder of calibration images, or a name under $SREVAL_TRAINING_ROOT (default: T91)")
    create.add_argument("--dir", type=Path, help="study folder (default: $SREVAL_STUDIES/NAME or ~/.local/share/"
                        "sreval/studies/NAME); must not exist or be empty (it is replaced by the finished folder)")
    create.add_argument("--group-read", action="store_true",
                        help="let the folder's group read the stimuli (folder 0750, files 0640; default 0700 and 0600, "
                        "only you): the rater app must run as you, or as a user of that group")
    create.add_argument("--seed", type=int, help="seed of every random choice and every rater's order "
                        "(default: random, stored with the study)")
    create.add_argument("--data-root", help="folder holding Set5/HR, Set14/HR, ... (default: $SREVAL_DATA_ROOT)")
    create.add_argument("--cache-dir", help="SR cache shared with run-benchmarks (default: $SREVAL_CACHE)")
    create.add_argument("--no-cache", action="store_true", help="compute every SR image afresh")
    create.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    invite = study_sub.add_parser("invite", help="add raters; prints one link per rater (shown only once)")
    invite.add_argument("--n", required=True, type=int, help="number of raters to invite")
    invite.add_argument("--base-url", required=True, help="address of the rater app, e.g. https://mos.example.org/")

    status = study_sub.add_parser("status", help="progress per rater and per method, failed gold items")
    status.add_argument("--include-simulated", action="store_true", help="count simulated raters too")

    export = study_sub.add_parser("export", help="ratings as CSV in long format (simulated ones left out)")
    export.add_argument("--out", required=True, type=Path, help="CSV file to write")
    export.add_argument("--include-simulated", action="store_true", help="also the ratings of simulated raters")
    export.add_argument("--no-gold", action="store_true", help="leave out the gold items")
    export.add_argument("--no-calibration", action="store_true", help="leave out the calibration answers")

    simulate = study_sub.add_parser("simulate", help="synthetic raters (bias, inconsistency) rating concurrently")
    simulate.add_argument("--raters", type=int, default=20, help="number of simulated raters (default: 20)")
    simulate.add_argument("--workers", type=int, default=8, help="raters rating at the same time (default: 8)")
    simulate.add_argument("--seed", type=int, help="seed of the simulated scores (default: random)")

    close = study_sub.add_parser("close", help="stop a study taking ratings")
    study_list = study_sub.add_parser("list", help="every study with its raters and ratings")

    for p in (invite, status, export, simulate, close):
        p.add_argument("--study", required=True, help="study name")
    for p in (create, invite, status, export, simulate, close, study_list):
        p.add_argument("--db", help=db_help)
    create.set_defaults(func=cmd_study_create)
    invite.set_defaults(func=cmd_study_invite)
    status.set_defaults(func=cmd_study_status)
    export.set_defaults(func=cmd_study_export)
    simulate.set_defaults(func=cmd_study_simulate)
    close.set_defaults(func=cmd_study_close)
    study_list.set_defaults(func=cmd_study_list)

    hash_pw = study_sub.add_parser(
        "hash-password", help="hash an admin password for the rater app's .streamlit/secrets.toml"
    )
    hash_pw.add_argument("--iterations", type=int, help="PBKDF2 iterations (default and least: 600000)")
    hash_pw.add_argument(
        "--force", action="store_true", help="accept fewer iterations or a password under 12 characters (tests only)"
    )
    hash_pw.set_defaults(func=cmd_study_hash_password)


def _add_analysis_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db_help = "database URL of the study (default: $SREVAL_DB or an SQLite file)"
    analyze = sub.add_parser(
        "analyze", help="MOS study statistics: MOS, Wilcoxon tests, rater screening, reliability, ranks; "
        "`analyze power`: raters needed",
        description="Analyse the ratings of a MOS study (--ratings or --study, with --out), or, with the action "
        "`power`, estimate how many raters a study needs (sreval analyze power --delta 0.3).",
    )  # fmt: skip
    source = analyze.add_mutually_exclusive_group()
    source.add_argument("--ratings", type=Path, metavar="FILE.csv",
                        help="long CSV: rater, stimulus, method, dataset, image, repetition, score (as `study export`)")
    source.add_argument("--study", metavar="NAME", help="a study in the study store (see --db)")
    analyze.add_argument("--db", help=db_help)
    analyze.add_argument("--out", type=Path, metavar="DIR", help="folder for mos.csv, wilcoxon.csv, raters.csv, ...")
    analyze.add_argument("--results-db", metavar="URL",
                         help="results database with metric values for correlation.csv (default: --db)")
    analyze.add_argument("--run", type=int, action="append", metavar="ID",
                         help="results run(s) whose metric values to correlate with MOS (default: every run); "
                         "repeatable")
    analyze.add_argument("--pairing", choices=["rater-image", "image-mos"], default="rater-image",
                         help="Wilcoxon pairs: one per rater x image (default) or one per image (per-image MOS)")
    analyze.add_argument("--correction", choices=["holm", "bh"], default="holm",
                         help="multiple-testing correction deciding `significant`: Holm (default) or "
                         "Benjamini-Hochberg")
    analyze.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    analyze.add_argument("--ci", choices=["t", "bootstrap"], default="t",
                         help="MOS confidence interval: t (BT.500, default) or bootstrap over raters and images")
    analyze.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                         help="bootstrap replicates with --ci bootstrap (default: 2000)")
    analyze.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    analyze.add_argument("--scale", default="1,5", metavar="MIN,MAX",
                         help="score scale of a --ratings file (default: 1,5); 'any' accepts any number")
    analyze.add_argument("--include-gold", action="store_true", help="analyse the gold (attention check) items too")
    analyze.add_argument("--include-calibration", action="store_true", help="analyse the calibration answers too")
    analyze.add_argument("--include-simulated", action="store_true", help="analyse simulated raters too")
    analyze.set_defaults(func=cmd_analyze)

    actions = analyze.add_subparsers(dest="analyze_command", metavar="ACTION", required=False,
                                     title="optional action (instead of an analysis)")
    power = actions.add_parser("power", help="raters needed to detect a MOS difference (simulation)",
                               description="Estimate by simulation how many raters a study needs for the "
                               "Wilcoxon test to detect a MOS difference of --delta between two methods.")
    power.add_argument("--delta", type=float, required=True, help="MOS difference to detect, e.g. 0.3")
    pilot = power.add_mutually_exclusive_group()
    pilot.add_argument("--from-study", metavar="NAME", help="take rater bias and inconsistency from this pilot study")
    pilot.add_argument("--from-ratings", type=Path, metavar="FILE.csv", help="... or from a pilot's ratings CSV")
    power.add_argument("--db", help=db_help)
    power.add_argument("--include-simulated", action="store_true", help="use the pilot's simulated raters too")
    power.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    power.add_argument("--power", type=float, default=0.8, help="power to reach (default: 0.8)")
    power.add_argument("--images", type=int, default=20, help="images per method in the study (default: 20)")
    power.add_argument("--sims", type=int, default=200, help="simulated studies per number of raters (default: 200)")
    power.add_argument("--pairing", choices=["rater-image", "image-mos"], default="rater-image",
                       help="Wilcoxon pairs, as for `sreval analyze` (default: rater-image)")
    power.add_argument("--interaction-sd", type=float, default=0.0,
                       help="SD over images of the difference between the methods (default: 0, the same everywhere)")
    power.add_argument("--max-raters", type=int, default=256, help="largest number of raters tried (default: 256)")
    power.add_argument("--seed", type=int, default=0, help="seed of the simulation (default: 0)")
    power.set_defaults(func=cmd_analyze_power)


def _add_report_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser(
        "report", help="one self-contained HTML report of a MOS study (table, figures, rater checks, gallery)",
        description="Write one HTML page (plotly.js embedded: opens offline) with SRGAN's Table 2 layout, the "
        "perception-distortion plane, MOS with CIs, score distributions, significance matrices, rater "
        "diagnostics and a gallery of stimulus crops.",
    )  # fmt: skip
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--study", metavar="NAME", help="a study in the study store (see --db); gives the gallery")
    source.add_argument("--ratings", type=Path, metavar="FILE.csv", help="long ratings CSV (as `study export`)")
    report.add_argument("--db", help="database URL of the study (default: $SREVAL_DB or an SQLite file)")
    report.add_argument("--results", type=Path, metavar="DIR",
                        help="a run-benchmarks --out folder (summary.csv): PSNR, SSIM, PI/NIQE, RMSE; "
                        "without it the table shows MOS only")
    report.add_argument("--out", type=Path, metavar="FILE.html",
                        help="HTML file to write (default: reports/NAME.html, NAME the study or the CSV's name)")
    report.add_argument("--title", help="page title (default: 'MOS study NAME')")
    report.add_argument("--gallery", type=int, default=4, metavar="N", help="images in the gallery (default: 4)")
    report.add_argument("--crop", type=int, default=128, metavar="PX", help="side of the gallery crops (default: 128)")
    report.add_argument("--pairing", choices=["rater-image", "image-mos"], default="rater-image",
                        help="Wilcoxon pairs, as for `sreval analyze` (default: rater-image)")
    report.add_argument("--correction", choices=["holm", "bh"], default="holm",
                        help="multiple-testing correction: Holm (default) or Benjamini-Hochberg")
    report.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    report.add_argument("--include-simulated", action="store_true",
                        help="analyse simulated raters too (the page then says SIMULATED in a banner)")
    report.set_defaults(func=cmd_report)


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
    from sreval.metrics import metric_info

    def formatter(metric: str) -> Callable[[float], str]:
        places = metric_info(metric).decimals
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
    from sreval.benchmark.cache import Cache
    from sreval.benchmark.runner import run_benchmarks
    from sreval.metrics import select_metrics
    from sreval.protocol import Protocol
    from sreval.provenance import resolve_device
    from sreval.results import open_store

    protocol = Protocol(degradation=args.degradation, y_mode=args.y_mode)
    names = [name for name in args.metrics.split(",") if name.strip()]
    metrics, unavailable = select_metrics(names, protocol, _asset_paths(args.asset))
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
    from sreval.datasets.registry import parse_datasets
    from sreval.methods.specs import parse_methods

    methods = parse_methods(
        args.methods.split(","), options=_inference_options(args), asset_paths=_asset_paths(args.asset)
    )
    return _benchmark(args, methods, parse_datasets(args.datasets.split(",")), "run-benchmarks")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sreval.datasets.registry import get_dataset
    from sreval.methods.folder import Folder

    if not args.sr.is_dir():
        raise SrevalError(f"--sr {args.sr} is not a folder")
    dataset = get_dataset(args.dataset)
    method = Folder(args.sr, name=args.name)
    if not method.images(dataset):
        raise SrevalError(f"no file in {method.folder_for(dataset)} matches a {dataset.key} image name")
    return _benchmark(args, [method], [dataset], "evaluate")


def cmd_data_verify(args: argparse.Namespace) -> int:
    from sreval.datasets.registry import parse_datasets, verify

    root = settings.data_root(args.data_root)
    failed = 0
    for dataset in parse_datasets(args.datasets.split(",")):
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

    from sreval.datasets.download import DEFAULT_MIRROR, download
    from sreval.datasets.registry import parse_datasets

    root = settings.data_root(args.data_root)
    for dataset in parse_datasets(args.datasets.split(",")):
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
    from sreval.results import open_store

    store = open_store(settings.db_url(args.db))
    try:
        runs = store.list_runs()
    finally:
        store.close()
    print(runs.to_string(index=False) if not runs.empty else "(no runs stored)")
    return 0


def _zoo_roots(args: argparse.Namespace) -> list[Path]:
    from sreval import zoo

    return zoo.zoo_roots([args.zoo] if args.zoo else [])


def _format_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def cmd_train(args: argparse.Namespace) -> int:
    from sreval.provenance import resolve_device
    from sreval.train import recipes
    from sreval.train.data import resolve_train_dir
    from sreval.train.devices import process_device
    from sreval.train.loop import TrainOptions, train

    recipe = recipes.get_recipe(args.recipe)
    if args.config:
        recipe = recipes.with_overrides(recipe, recipes.load_overrides(args.config), str(args.config))
    recipe = recipes.with_overrides(recipe, recipes.parse_set(args.set), "--set")
    if args.steps is not None:
        recipe = recipe.scaled_to(args.steps)
    device = process_device(resolve_device(args.device))
    data_root = None
    if recipe.validate_every:
        data_root = settings.data_root(args.data_root)
    options = TrainOptions(
        out=args.out, train_dir=resolve_train_dir(args.train_dir), device=device, data_root=data_root,
        vgg_weights=args.vgg, progress=not args.quiet and sys.stderr.isatty(), stop_after=args.stop_after,
    )
    result = train(recipe, options)
    if result.finished and result.final_dir is not None:
        print(f"{recipe.name}: {result.step} steps in {result.wall_s:.0f} s; final weights in {result.final_dir}")
        for v in result.validation:
            print(f"  {v['dataset']}: PSNR {v['psnr']:.3f} dB, SSIM {v['ssim']:.4f} ({v['n']} images)")
        print(f"add it to the zoo: sreval zoo add {args.out} --name NAME")
    elif not result.finished:
        print(f"{recipe.name}: stopped at step {result.step} of {recipe.steps}; run the same command to resume")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from sreval.train import recipes

    if args.name:
        for key, value in recipes.get_recipe(args.name).as_dict().items():
            print(f"{key}: {value}")
        return 0
    for r in recipes.RECIPES.values():
        losses = ", ".join(f"{k} {v:g}" for k, v in r.losses.items())
        init = f", from {r.init_from}" if r.init_from else ""
        print(f"{r.name:16} {r.generator:11} {r.steps:>9,} steps  lr {r.lr:g}  crop {r.crop}  [{losses}]{init}")
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from sreval import zoo

    roots = _zoo_roots(args)
    if args.zoo_command == "show":
        return _zoo_show(zoo.get_entry(args.name, roots), _asset_paths(args.asset))
    if args.zoo_command == "add":
        from sreval.train.export import add_run

        entry = add_run(args.run, args.name, root=args.zoo, overwrite=args.overwrite)
        print(f"added {entry.name} to {entry.folder} (sreval run-benchmarks --methods {entry.name} to score it)")
        return 0
    entries, problems = zoo.scan(roots)
    rows = []
    for e in entries:
        try:
            params = _format_params(zoo.count_parameters(e))
        except SrevalError as error:  # one bad entry is reported below; the others are still listed
            params = "?"
            problems.append(str(error))
        rows.append({"name": e.name, "architecture": e.architecture, "params": params, "status": e.weights.status,
                     "recipe": e.recipe or "-", "description": e.description})
    if rows:
        widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
        for row in [{k: k for k in widths}, *rows]:
            print("  ".join(row[k].ljust(widths[k]) for k in widths).rstrip())
    else:
        print("(no zoo models)")
    print(f"\nsearched: {', '.join(map(str, roots))}")
    if problems:
        count = f"{len(problems)} invalid zoo entr{'y' if len(problems) == 1 else 'ies'}"
        raise SrevalError(f"{count}: {'; '.join(problems)}")
    return 0


def _zoo_show(entry: zoo_module.ZooEntry, asset_paths: dict[str, Path]) -> int:
    from sreval import archs, assets, zoo

    print(f"{entry.name}  ({entry.folder})\n")
    print((entry.folder / zoo.CONFIG).read_text(encoding="utf-8").rstrip())
    print(f"\nparameters (architecture): {zoo.count_parameters(entry):,}")
    weights = entry.weights
    if weights.status == "trained":
        status = zoo.checksum_status(entry)
        print(f"weights: {entry.weights_path}, sha256 {status}")
        if status == "ok":
            n_tensors, n_elements = zoo.tensor_summary(entry)
            print(f"tensors: {n_tensors} ({n_elements:,} values)")
    elif weights.status == "external":
        assert weights.asset is not None and weights.loader is not None
        loader = "registered" if weights.loader in archs.weight_loader_names() else "NOT registered"
        try:
            place = f"found at {assets.resolve(weights.asset, asset_paths.get(weights.asset))}"
        except SrevalError as e:  # a missing or unknown asset is what `show` is there to report, not a failure
            place = f"not available: {e}"
        print(f"weights: external; loader {weights.loader} {loader}; asset {weights.asset} {place}")
    else:
        print(f"weights: none ({weights.status}): {weights.reason}")
    print()
    card = entry.card_path
    print(card.read_text(encoding="utf-8").rstrip() if card.is_file() else f"(no model card: {card} is missing)")
    return 0


def _parse_alphas(spec: str) -> list[float]:
    try:
        return [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise SrevalError(f"--sweep expects comma-separated numbers such as 0,0.2,0.4, got {spec!r}") from None


def cmd_interpolate(args: argparse.Namespace) -> int:
    from sreval import zoo

    roots = _zoo_roots(args)
    assets = _asset_paths(args.asset)
    if args.alpha is not None:
        if not args.name or args.name_prefix:
            raise SrevalError("--alpha needs --name (and no --name-prefix)")
        entry = zoo.interpolate(args.a, args.b, args.alpha, args.name, root=args.zoo, overwrite=args.overwrite,
                                asset_paths=assets, roots=roots)
        print(f"wrote zoo model {entry.name} (α = {args.alpha:g}) to {entry.folder}")
        return 0
    if not args.name_prefix or args.name:
        raise SrevalError("--sweep needs --name-prefix (and no --name)")
    names = zoo.alpha_sweep(args.a, args.b, _parse_alphas(args.sweep), args.name_prefix, root=args.zoo,
                            overwrite=args.overwrite, asset_paths=assets, roots=roots)
    print(f"wrote {len(names)} zoo models to {zoo.write_root(args.zoo)}: {', '.join(names)}")
    return 0


def cmd_study_create(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sreval.benchmark.cache import Cache
    from sreval.study import open_study_store
    from sreval.study.builder import build_study

    cache = None if args.no_cache else Cache(settings.cache_dir(args.cache_dir))
    images = [i.strip() for i in args.images.split(",") if i.strip()] if args.images else None
    with open_study_store(args.db) as store, tqdm(
        desc="rendering", unit="image", disable=args.quiet or not sys.stderr.isatty()
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        info = build_study(
            store, args.name, args.methods.split(","), args.datasets.split(","),
            data_root=settings.data_root(args.data_root),
            images=images, retest=args.retest, gold_images=args.gold_images,
            calibration_images=args.calibration_images, calibration_dir=args.calibration_dir, folder=args.dir,
            seed=args.seed, min_retest_gap=args.min_retest_gap, cache=cache, progress=progress,
            group_read=args.group_read,
        )
    s = info.stimuli
    print(
        f"created study {info.name}: {s['test']} test items ({len(info.methods)} methods: {', '.join(info.methods)}), "
        f"{s['gold_hr'] + s['gold_nn']} gold items, {s['calibration_hr'] + s['calibration_nn']} calibration items"
        f"\nfiles in {info.folder}; seed {info.seed}"
        f"\nnext: sreval study invite --study {info.name} --n 26 --base-url URL"
    )
    return 0


def cmd_study_invite(args: argparse.Namespace) -> int:
    from sreval.study import invite_link, open_study_store
    from sreval.study.security import check_base_url

    check_base_url(args.base_url)  # a bad URL fails before anyone is invited
    with open_study_store(args.db) as store:
        invitations = store.invite(args.study, args.n)
    for rater, token in invitations:
        print(f"{rater}\t{invite_link(args.base_url, token)}")
    print(f"invited {len(invitations)} raters to {args.study}; the links are shown only this once (the database keeps "
          "only a hash of each token): send them now", file=sys.stderr)
    return 0


def cmd_study_status(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store

    with open_study_store(args.db) as store:
        status = store.status(args.study, include_simulated=args.include_simulated)
    info = status.info
    state = f"closed {info.closed_at:%Y-%m-%d %H:%M} UTC" if info.closed_at else "open"
    raters = status.raters
    finished = int(raters["finished_at"].notna().sum())
    who = "raters" if args.include_simulated else "raters (simulated ones left out; --include-simulated)"
    print(f"study {info.name}: {state}; {len(raters)} {who}, {finished} finished; {sum(info.stimuli.values())} stimuli")
    if not raters.empty:
        shown = raters[["rater", "simulated", "done", "total", "gold_failures", "calibration_misses", "finished_at"]]
        print("\n" + shown.to_string(index=False))
    print("\n" + status.methods.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\ngold failures: {len(status.gold_failures)} ({status.gold_rule})")
    if not status.gold_failures.empty:
        print(status.gold_failures.to_string(index=False))
    if not status.problems.empty:
        print(f"\nstimuli the rater app could not show (raters get no buttons for them): {len(status.problems)}")
        print(status.problems.to_string(index=False))
    return 0


def cmd_study_export(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store

    with open_study_store(args.db) as store:
        ratings = store.export(
            args.study, include_simulated=args.include_simulated, include_gold=not args.no_gold,
            include_calibration=not args.no_calibration,
        )
    _write_csv(ratings, args.out)
    print(f"wrote {len(ratings)} ratings of {ratings['rater'].nunique()} raters to {args.out}")
    return 0


def cmd_study_simulate(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store
    from sreval.study.simulate import simulate

    with open_study_store(args.db) as store:
        result = simulate(store, args.study, raters=args.raters, workers=args.workers, seed=args.seed)
    ids = [r.rater for r in result.raters]
    print(f"simulated raters {ids[0]}..{ids[-1]} ({len(ids)}, seed {result.seed}): {result.ratings} ratings in "
          f"{result.seconds:.1f} s with {args.workers} workers; flagged simulated (left out of export and status "
          "unless --include-simulated)")
    return 0


def cmd_study_close(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store

    with open_study_store(args.db) as store:
        closed_at = store.close_study(args.study)
    print(f"study {args.study} closed at {closed_at:%Y-%m-%d %H:%M:%S} UTC; it takes no more ratings")
    return 0


def cmd_study_list(args: argparse.Namespace) -> int:
    from sreval.study import open_study_store

    with open_study_store(args.db) as store:
        studies = store.list_studies()
    print(studies.to_string(index=False) if not studies.empty else "(no studies)")
    return 0


def cmd_study_hash_password(args: argparse.Namespace) -> int:
    import getpass

    from sreval.study.security import PBKDF2_ITERATIONS, check_password_strength, hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("admin password: ")
        if getpass.getpass("again: ") != password:
            raise SrevalError("the two passwords differ; nothing was hashed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    iterations = args.iterations or PBKDF2_ITERATIONS
    if not args.force:
        check_password_strength(password, iterations)
    hashed = hash_password(password, iterations=iterations)
    print(hashed)
    print(f'put it in the app\'s .streamlit/secrets.toml as: admin_password_hash = "{hashed}"', file=sys.stderr)
    return 0


def _format_mos(mos: pd.DataFrame) -> str:
    shown = mos.loc[:, ["dataset", "method", "mos", "ci_low", "ci_high", "n_ratings", "n_raters"]]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def cmd_analyze(args: argparse.Namespace) -> int:
    from sreval.analysis import AnalysisOptions, analyze, read_ratings_csv, validate_ratings, write_analysis
    from sreval.analysis.ratings import parse_scale
    from sreval.results import open_store
    from sreval.study import open_study_store

    if args.ratings is None and args.study is None:
        raise SrevalError("sreval analyze needs --ratings FILE.csv or --study NAME (or the action: analyze power)")
    if args.out is None:
        raise SrevalError("sreval analyze needs --out DIR, the folder for the CSV files")
    if args.ratings is not None:
        ratings = read_ratings_csv(args.ratings, scale=parse_scale(args.scale))
        source = str(args.ratings)
    else:
        with open_study_store(args.db) as study_store:
            ratings = validate_ratings(study_store.ratings(args.study))
        source = f"study {args.study}"
    values = None
    note = "correlation.csv: skipped (pass --results-db or --run for metric values)"
    if args.study is not None or args.results_db is not None or args.run:
        with open_store(args.results_db or args.db) as results_store:
            values, runs = results_store.latest_values(args.run or [])
        if values.empty:
            values, note = None, "correlation.csv: skipped (no metric values in the results database)"
        else:
            note = f"correlation.csv: metric values of run(s) {', '.join(map(str, runs))}"
    options = AnalysisOptions(
        pairing=args.pairing, correction=args.correction, alpha=args.alpha, ci=args.ci, n_boot=args.bootstrap,
        seed=args.seed, include_gold=args.include_gold, include_calibration=args.include_calibration,
        include_simulated=args.include_simulated,
    )  # fmt: skip
    result = analyze(ratings, options, metric_values=values)
    if result.correlation is not None and result.correlation.empty:
        note = "correlation.csv: no metric value matches a rated method, dataset and image"
    written = write_analysis(result, args.out)
    analysed = result.ratings
    ci = "t" if args.ci == "t" else f"bootstrap over raters and images, {args.bootstrap} replicates"
    print(f"{source}: {len(analysed)} ratings by {analysed['rater'].nunique()} raters "
          f"({', '.join(sorted(analysed['kind'].unique()))})")
    print(f"\nMOS with 95 % CI ({ci}):\n{_format_mos(result.mos)}")
    tests = result.wilcoxon
    print(f"\nWilcoxon ({args.pairing} pairs, {args.correction} correction): {int(tests['significant'].sum())} of "
          f"{len(tests)} method pairs differ at alpha {args.alpha}")
    rejected = result.raters.loc[result.raters["rejected_bt500"], "rater"].tolist()
    listed = ": " + ", ".join(rejected) if rejected else ""
    print(f"BT.500 screening: {len(rejected)} rater(s) would be rejected{listed} (reported only: no rater is left out)")
    print(note)
    print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


def cmd_analyze_power(args: argparse.Namespace) -> int:
    from sreval.analysis import RaterModel, raters_needed, read_ratings_csv, select_ratings, validate_ratings
    from sreval.analysis.power import rater_model_from_ratings
    from sreval.study import open_study_store

    if args.ratings is not None or args.study is not None or args.out is not None:
        raise SrevalError("--ratings, --study and --out belong to `sreval analyze`; for a pilot, use "
                          "`sreval analyze power --from-study NAME` or `--from-ratings FILE.csv`")
    model = RaterModel()
    if args.from_study is not None or args.from_ratings is not None:
        if args.from_study is not None:
            with open_study_store(args.db) as study_store:
                pilot, source = validate_ratings(study_store.ratings(args.from_study)), f"pilot study {args.from_study}"
        else:
            pilot, source = read_ratings_csv(args.from_ratings), f"pilot ratings {args.from_ratings}"
        model = rater_model_from_ratings(select_ratings(pilot, include_simulated=args.include_simulated), source)
    result = raters_needed(
        args.delta, target=args.power, alpha=args.alpha, images=args.images, sims=args.sims, model=model,
        pairing=args.pairing, interaction_sd=args.interaction_sd, max_raters=args.max_raters, seed=args.seed,
    )  # fmt: skip
    upsilon = (f"inconsistency resampled from {len(model.inconsistencies)} fitted values "
               f"(mean {sum(model.inconsistencies) / len(model.inconsistencies):.3f})" if model.inconsistencies
               else f"inconsistency |N(0, {model.inconsistency_sd:g})| + 0.05")
    print(f"raters: {model.source}; bias SD {model.bias_sd:.3f}, {upsilon}")
    print(f"design: 2 methods x {args.images} images, MOS difference {args.delta:g}, two-sided Wilcoxon "
          f"({args.pairing} pairs) at alpha {args.alpha:g}, {args.sims} simulated studies per count\n")
    print(result.curve.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if result.n_raters is None:
        print(f"\npower {args.power:g} not reached with {args.max_raters} raters: more images, a larger difference "
              "or --max-raters")
    else:
        print(f"\nraters needed for power {args.power:g}: {result.n_raters}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sreval.analysis import AnalysisOptions
    from sreval.report.study_report import build_report, load_inputs, write_report

    name = args.study if args.study is not None else args.ratings.stem
    inputs = load_inputs(study=args.study, ratings=args.ratings, db=args.db, results=args.results)
    options = AnalysisOptions(pairing=args.pairing, correction=args.correction, alpha=args.alpha,
                              include_simulated=args.include_simulated)  # fmt: skip
    page, result = build_report(inputs, options, title=args.title or f"MOS study {name}",
                                gallery_images=args.gallery, crop=args.crop)  # fmt: skip
    path = write_report(page, args.out or Path("reports") / f"{name}.html")
    simulated = " (SIMULATED ratings)" if result.ratings["simulated"].any() else ""
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {len(result.ratings)} ratings by "
          f"{result.ratings['rater'].nunique()} raters{simulated}")
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

"""`sreval analyze` (and `analyze power`) and `sreval report`: the statistics of a MOS study and its HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from sreval.cli.common import Subcommands
from sreval.errors import ParameterError, SrevalError


def add_commands(sub: Subcommands) -> None:
    _add_analysis_commands(sub)
    _add_report_commands(sub)


def _add_analysis_commands(sub: Subcommands) -> None:
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


def _add_report_commands(sub: Subcommands) -> None:
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


def parse_scale(text: str) -> tuple[float, float] | None:
    """`--scale MIN,MAX` (e.g. 1,5 or 0,100) as a pair, or 'any' as None (any numeric scale)."""
    if text.strip().lower() == "any":
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise ParameterError("scale", f"scale must be MIN,MAX (e.g. 1,5) or 'any', not {text!r}") from None
    return low, high


def _format_mos(mos: pd.DataFrame) -> str:
    shown = mos.loc[:, ["dataset", "method", "mos", "ci_low", "ci_high", "n_ratings", "n_raters"]]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def cmd_analyze(args: argparse.Namespace) -> int:
    from sreval.analysis import AnalysisOptions, analyze, read_ratings_csv, validate_ratings, write_analysis
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
    from sreval.analysis import raters_needed, read_ratings_csv, select_ratings, validate_ratings
    from sreval.analysis.power import rater_model_from_ratings
    from sreval.study import open_study_store
    from sreval.study.rater_model import RaterModel

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

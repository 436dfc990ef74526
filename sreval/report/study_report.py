"""`sreval report`: one self-contained HTML page summarising a MOS study for researchers.

The page holds, in order: a table in the style of SRGAN's Table 2 (PSNR, SSIM, PI or NIQE and MOS per method ×
dataset), the perception–distortion plane, MOS bars with 95 % confidence intervals, the distribution of the
scores on the ACR scale per method (SRGAN Fig. 5), a heatmap of the corrected Wilcoxon p-values per dataset, rater
diagnostics (P.910 bias against inconsistency, BT.500 rejections, failed gold items) and a gallery of
side-by-side centre crops of the rated stimuli.

Statistics come from `sreval.analysis.analyze`, so the page shows exactly what `sreval analyze` writes as CSV.
The page must open offline and be mailed as one file: plotly.js is embedded once (before the first figure) and
the crops are PNG data URIs; nothing is fetched from the network. Ratings of simulated raters put a banner on
top, so that a simulation is never mistaken for a study.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sreval import __version__
from sreval.analysis import Analysis, AnalysisOptions, analyze
from sreval.errors import ParameterError, SrevalError
from sreval.fileutil import atomic_open
from sreval.report.gallery import check_gallery, gallery
from sreval.report.html import Figures, esc, frame_table, section
from sreval.report.pd_plane import load_summary, pd_figure, pd_points
from sreval.report.results_table import method_order, results_table
from sreval.report.study_figures import distribution_figure, mos_figure, rater_figure, significance_figure

#: Section ids, in page order (the test checks they are all there).
SECTIONS = ("table", "pd-plane", "mos", "distribution", "significance", "raters", "gallery")
SIMULATED_BANNER = "SIMULATED RATINGS — not a real study"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1.5em 3em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.banner { background: #b00020; color: #fff; font-size: 1.6em; font-weight: bold; text-align: center;
          padding: 0.6em; margin: 1em 0; letter-spacing: 0.05em; }
.note { color: #555; font-size: 0.92em; }
table.data { border-collapse: collapse; font-size: 0.9em; margin: 0.8em 0; }
table.data th, table.data td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
table.data th { background: #f3f3f3; } table.data td.name { text-align: left; }
table.data td.best { font-weight: bold; } table.data tr.flag td { background: #fde8e8; }
.gallery-row { margin: 1em 0 1.6em; } .crops { display: flex; flex-wrap: wrap; gap: 10px; }
figure.crop { margin: 0; text-align: center; font-size: 0.85em; }
figure.crop img { display: block; image-rendering: pixelated; border: 1px solid #999; }
"""


@dataclass(frozen=True)
class ReportInputs:
    """What a report is made from: all ratings of a study (as `read_*_ratings` return them), where they came
    from, and optionally a run's `summary.csv` (metrics) and the study's stimuli (for the gallery)."""

    ratings: pd.DataFrame
    source: str
    summary: pd.DataFrame | None = None
    results: str | None = None  # where `summary` came from, for the page
    stimuli: pd.DataFrame | None = None  # `StudyStore.stimuli`: kind, method, dataset, image, path


def build_report(
    inputs: ReportInputs,
    options: AnalysisOptions | None = None,
    *,
    title: str = "MOS study report",
    gallery_images: int = 4,
    crop: int = 128,
) -> tuple[str, Analysis]:
    """The report page (HTML text) and the analysis it shows; the gallery shows the first `gallery_images` images
    in crops of `crop` pixels."""
    check_gallery(gallery_images, crop, images_parameter="gallery_images")
    options = options or AnalysisOptions()
    result = analyze(inputs.ratings, options)
    analysed = result.ratings
    summary = inputs.summary
    if summary is not None:  # a run may cover more datasets than the study: show the rated ones only
        summary = summary[summary["dataset"].isin(set(analysed["dataset"]))]
        summary = summary if not summary.empty else None
    methods = method_order(result.mos, summary)
    figure = Figures()
    simulated = bool(analysed["simulated"].any())
    left_out = int(inputs.ratings["simulated"].sum()) if not options.include_simulated else 0

    parts = [f"<h1>{esc(title)}</h1>"]
    if simulated:
        parts.append(f'<div class="banner" id="simulated-banner">{esc(SIMULATED_BANNER)}</div>')
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    ci = "t interval" if options.ci == "t" else f"bootstrap over raters and images ({options.n_boot} replicates)"
    kinds = ", ".join(sorted(map(str, analysed["kind"].unique())))
    parts.append(
        f'<p class="note">Ratings: {esc(inputs.source)} — {len(analysed)} ratings ({esc(kinds)}) by '
        f"{analysed['rater'].nunique()} raters, {analysed['method'].nunique()} methods, "
        f"{analysed['dataset'].nunique()} dataset(s)"
        + (f"; {int(analysed['simulated'].sum())} ratings are from simulated raters" if simulated else "")
        + (f"; {left_out} ratings of simulated raters left out" if left_out else "")
        + f". Metrics: {esc(inputs.results) if inputs.results else 'none (no benchmark results given)'}. "
        f"MOS CI: {ci}. Generated {generated} by sreval {esc(__version__)}.</p>"
    )

    table, note = results_table(result.mos, summary)
    parts.append(section("table", "Results (SRGAN Table 2 layout)", f'<p class="note">{esc(note)} Best value of '
                          "each row in bold.</p>" + table))  # fmt: skip

    if summary is None:
        plane = '<p class="note">Skipped: no benchmark results, so no RMSE and PI/NIQE.</p>'
    else:
        try:
            pd_points(summary)
            plane = figure(pd_figure(summary), "pd-plane")
        except SrevalError as exc:
            plane = f'<p class="note">Skipped: {esc(exc)}.</p>'
    parts.append(section("pd-plane", "Perception–distortion plane", plane))

    parts.append(section("mos", "MOS", figure(mos_figure(result.mos, methods), "mos")))
    parts.append(section("distribution", "Rating distributions",
                          figure(distribution_figure(analysed, methods), "distribution")))  # fmt: skip
    if result.wilcoxon.empty:
        significance = '<p class="note">Skipped: fewer than two methods per dataset.</p>'
    else:
        significance = figure(significance_figure(result.wilcoxon, methods, options), "significance")
    parts.append(section("significance", "Significance matrix", significance))

    raters = result.raters
    rejected = int(raters["rejected_bt500"].sum())
    shown = raters.loc[:, ["rater", "n", "rejected_bt500", "bias", "inconsistency", "retest_r", "gold_failures"]]
    rater_note = (
        f'<p class="note">BT.500 screening would reject {rejected} of {len(raters)} rater(s) (highlighted); '
        "screening only reports, no rater is left out of the tables above.</p>"
    )
    reliability = frame_table(result.reliability, {}) if not result.reliability.empty else ""
    parts.append(section(
        "raters", "Rater diagnostics",
        figure(rater_figure(raters), "raters") + rater_note
        + frame_table(shown, {"n": 0, "bias": 2, "inconsistency": 2, "retest_r": 2, "gold_failures": 0},
                       flag=shown["rejected_bt500"])
        + "<h3>Reliability</h3>" + reliability,
    ))  # fmt: skip

    if inputs.stimuli is None:
        crops = '<p class="note">Skipped: the ratings do not come from a study, so there are no stimuli.</p>'
    else:
        crops = (f'<p class="note">Central {crop}×{crop} crops of the stimuli the raters saw (first {gallery_images} '
                 "images), with the per-image MOS.</p>"
                 + gallery(inputs.stimuli, analysed, methods, images=gallery_images, crop=crop))  # fmt: skip
    parts.append(section("gallery", "Gallery", crops))

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    return page, result


def write_report(page: str, path: Path) -> Path:
    """Write the page atomically (a reader never sees half of it)."""
    with atomic_open(path, encoding="utf-8") as f:
        f.write(page)
    return path


def load_inputs(
    *,
    study: str | None = None,
    ratings: Path | None = None,
    db: str | None = None,
    results: Path | None = None,
) -> ReportInputs:
    """Gather a report's inputs: the ratings (exactly one of a `study` in the store and a long CSV of `ratings`),
    the study's stimuli, and the `summary.csv` of a benchmark run's output folder (`results`)."""
    from sreval.analysis import read_ratings_csv, validate_ratings

    if (study is None) == (ratings is None):
        given = "both" if study is not None else "neither"
        raise ParameterError("study", f"a report needs exactly one of study and ratings, got {given}")
    stimuli = None
    if study is not None:
        from sreval.study import open_study_store

        with open_study_store(db) as store:
            frame, source = validate_ratings(store.ratings(study)), f"study {study}"
            stimuli = store.stimuli(study)
    else:
        assert ratings is not None
        frame, source = read_ratings_csv(ratings), str(ratings)
    summary = load_summary(results) if results is not None else None
    return ReportInputs(frame, source, summary, str(results) if results is not None else None, stimuli)

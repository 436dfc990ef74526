"""`sreval report`: one self-contained HTML page summarising a MOS study for researchers.

The page holds, in order: a table in the style of SRGAN's Table 2 (PSNR, SSIM, PI or NIQE and MOS per method ×
dataset), the perception–distortion plane, MOS bars with 95 % confidence intervals, the distribution of the
scores 1–5 per method (SRGAN Fig. 5), a heatmap of the corrected Wilcoxon p-values per dataset, rater
diagnostics (P.910 bias against inconsistency, BT.500 rejections, failed gold items) and a gallery of
side-by-side centre crops of the rated stimuli.

Statistics come from `sreval.analysis.analyze`, so the page shows exactly what `sreval analyze` writes as CSV.
The page must open offline and be mailed as one file: plotly.js is embedded once (before the first figure) and
the crops are PNG data URIs; nothing is fetched from the network. Ratings of simulated raters put a banner on
top, so that a simulation is never mistaken for a study.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from sreval import __version__
from sreval.analysis import Analysis, AnalysisOptions, analyze
from sreval.errors import SrevalError
from sreval.fileutil import atomic_open
from sreval.imageio import load_image
from sreval.report.pd_plane import load_summary, pd_figure, pd_points

#: Section ids, in page order (the test checks they are all there).
SECTIONS = ("table", "pd-plane", "mos", "distribution", "significance", "raters", "gallery")
#: Colours of the scores 1 (bad) … 5 (excellent) in the distribution bars.
SCORE_COLOURS = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")
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


def _esc(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: float, decimals: int) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def _frame_table(frame: pd.DataFrame, decimals: dict[str, int], flag: pd.Series | None = None) -> str:
    """A plain HTML table of `frame` (numbers rounded per column; rows where `flag` is true highlighted)."""
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cells = []
        for column in frame.columns:
            value = row[column]
            if isinstance(value, (bool, np.bool_)):
                text = "yes" if value else ""
            elif isinstance(value, (float, np.floating)):
                text = _fmt(float(value), decimals.get(str(column), 3))
            else:
                text = "—" if pd.isna(value) else _esc(value)
            cls = ' class="name"' if isinstance(value, str) else ""
            cells.append(f"<td{cls}>{text}</td>")
        marked = ' class="flag"' if flag is not None and bool(flag.iloc[i]) else ""
        rows.append(f"<tr{marked}>{''.join(cells)}</tr>")
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


# --- Table 2 ----------------------------------------------------------------------------------------------------


def _method_order(mos: pd.DataFrame, summary: pd.DataFrame | None) -> list[str]:
    """Methods from worst to best mean MOS over the datasets (SRGAN's column order); unrated methods first."""
    rated = mos.groupby("method")["mos"].mean().sort_values(kind="stable")
    unrated = sorted(set(summary["method"]) - set(rated.index)) if summary is not None else []
    return [*unrated, *map(str, rated.index)]


def results_table(mos: pd.DataFrame, summary: pd.DataFrame | None) -> tuple[str, str]:
    """SRGAN Table 2: datasets as row groups, one column per method; PSNR, SSIM, PI (or NIQE) and MOS rows.
    The best value of each row is bold. Returns the HTML table and a note on what it contains."""
    metrics: list[tuple[str, str, int, bool]] = []  # (metric, label, decimals, higher is better)
    note = "MOS with its 95 % confidence interval."
    means: dict[tuple[str, str, str], float] = {}
    if summary is not None:
        present = set(summary["metric"])
        for metric, label, decimals, higher in (("psnr", "PSNR (dB)", 2, True), ("ssim", "SSIM", 4, True)):
            if metric in present:
                metrics.append((metric, label, decimals, higher))
        if "pi" in present:
            metrics.append(("pi", "PI", 2, False))
        elif "niqe" in present:
            metrics.append(("niqe", "NIQE", 2, False))
            note += " NIQE is shown because the run has no PI (Ma's model missing)."
        means = {
            (str(m), str(d), str(k)): float(v)
            for m, d, k, v in zip(
                summary["method"], summary["dataset"], summary["metric"], summary["mean"], strict=True
            )
        }
    else:
        note += " MOS only: no objective metrics (no --results folder, or its run has none of these datasets)."
    methods = _method_order(mos, summary)
    datasets = sorted(map(str, mos["dataset"].unique()))  # rated datasets only: it is a study report
    by_key = {(str(r["method"]), str(r["dataset"])): r for r in mos.to_dict("records")}
    head = "<th>dataset</th><th>measure</th>" + "".join(f"<th>{_esc(m)}</th>" for m in methods)
    rows = []
    for dataset in datasets:
        lines: list[tuple[str, list[float], list[str], bool]] = []
        for metric, label, decimals, higher in metrics:
            values = [means.get((m, dataset, metric), math.nan) for m in methods]
            lines.append((label, values, [_fmt(v, decimals) for v in values], higher))
        values, texts = [], []
        for m in methods:
            if (m, dataset) in by_key:
                row = by_key[m, dataset]
                values.append(float(row["mos"]))
                texts.append(f"{row['mos']:.2f} <small>[{_fmt(row['ci_low'], 2)}, {_fmt(row['ci_high'], 2)}]</small>")
            else:
                values.append(math.nan)
                texts.append("—")
        lines.append(("MOS", values, texts, True))
        for k, (label, values, texts, higher) in enumerate(lines):
            finite = [v for v in values if math.isfinite(v)]
            best = (max(finite) if higher else min(finite)) if finite else math.nan
            cells = "".join(
                f'<td class="best">{t}</td>' if math.isfinite(v) and v == best else f"<td>{t}</td>"
                for v, t in zip(values, texts, strict=True)
            )
            group = f'<td class="name" rowspan="{len(lines)}">{_esc(dataset)}</td>' if k == 0 else ""
            rows.append(f'<tr>{group}<td class="name">{_esc(label)}</td>{cells}</tr>')
    table = f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return table, note


# --- Figures ----------------------------------------------------------------------------------------------------


def mos_figure(mos: pd.DataFrame, methods: list[str]) -> go.Figure:
    """MOS per method, one bar group per dataset, with the 95 % confidence interval as error bars."""
    fig = go.Figure()
    for dataset, part in mos.groupby("dataset", sort=True):
        part = part.set_index("method").reindex([m for m in methods if m in set(part["method"])])
        fig.add_trace(go.Bar(
            x=part.index, y=part["mos"], name=str(dataset),
            error_y={"type": "data", "symmetric": False, "array": part["ci_high"] - part["mos"],
                     "arrayminus": part["mos"] - part["ci_low"]},
            customdata=part[["ci_low", "ci_high", "n_ratings", "n_raters"]].to_numpy(),
            hovertemplate="%{x}<br>MOS %{y:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]<br>"
            "%{customdata[2]} ratings by %{customdata[3]} raters<extra>" + _esc(dataset) + "</extra>",
        ))  # fmt: skip
    fig.update_layout(
        barmode="group",
        template="plotly_white",
        title="MOS with 95 % confidence intervals",
        yaxis={"title": "MOS (1 = bad … 5 = excellent)", "range": [0, 5.2]},
        legend_title="dataset",
    )
    return fig


def distribution_figure(ratings: pd.DataFrame, methods: list[str]) -> go.Figure:
    """Share of each score 1–5 per dataset and method, as 100 % stacked horizontal bars (SRGAN Fig. 5)."""
    scores = ratings.assign(score=ratings["score"].round().astype("int64"))
    counts = scores.groupby(["dataset", "method", "score"]).size().unstack("score", fill_value=0)
    counts = counts.reindex(columns=range(1, 6), fill_value=0)
    order = {m: i for i, m in enumerate(methods)}
    keys = sorted(counts.index, key=lambda k: (str(k[0]), order.get(str(k[1]), len(order))), reverse=True)
    counts = counts.loc[keys]
    share = counts.div(counts.sum(axis=1), axis=0) * 100
    labels = [f"{d} · {m}" for d, m in counts.index]
    fig = go.Figure()
    for score, colour in zip(range(1, 6), SCORE_COLOURS, strict=True):
        fig.add_trace(go.Bar(
            y=labels, x=share[score], orientation="h", name=str(score), marker_color=colour,
            customdata=counts[score].to_numpy(), hovertemplate="%{y}: score " + str(score) +
            " %{x:.1f} % (%{customdata} ratings)<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(
        barmode="stack",
        template="plotly_white",
        title="Distribution of the scores per method",
        xaxis={"title": "share of ratings (%)", "range": [0, 100]},
        legend_title="score",
        height=max(300, 60 + 28 * len(labels)),
    )
    return fig


def significance_figure(wilcoxon: pd.DataFrame, methods: list[str], options: AnalysisOptions) -> go.Figure:
    """Per dataset, a methods × methods heatmap of the corrected p-value of the Wilcoxon test (colour:
    −log10 p); significant pairs are starred. The matrix is symmetric; the hover says which method is better."""
    column = "p_holm" if options.correction == "holm" else "p_bh"
    datasets = sorted(map(str, wilcoxon["dataset"].unique()))
    fig = make_subplots(rows=1, cols=max(1, len(datasets)), subplot_titles=datasets, horizontal_spacing=0.12)
    for col, dataset in enumerate(datasets, start=1):
        part = wilcoxon[wilcoxon["dataset"] == dataset]
        names = [m for m in methods if m in set(part["method_a"]) | set(part["method_b"])]
        index = {m: i for i, m in enumerate(names)}
        p = np.full((len(names), len(names)), np.nan)
        text = np.full(p.shape, "", dtype=object)
        hover = np.full(p.shape, "", dtype=object)
        for row in part.to_dict("records"):
            a, b = index[str(row["method_a"])], index[str(row["method_b"])]
            value, difference = float(row[column]), float(row["mean_difference"])
            better = row["method_a"] if difference > 0 else row["method_b"]
            for i, j in ((a, b), (b, a)):
                p[i, j] = value
                text[i, j] = f"{value:.2g}{' *' if row['significant'] else ''}"
                hover[i, j] = (
                    f"{_esc(names[i])} vs {_esc(names[j])}<br>corrected p {value:.3g}"
                    f"<br>{_esc(better)} rated higher (mean difference {abs(difference):.2f})"
                    f"<br>effect size {float(row['effect_size']):.2f}, {row['n_pairs']} pairs"
                )
        with np.errstate(divide="ignore"):
            z = -np.log10(np.clip(p, 1e-12, 1))
        fig.add_trace(go.Heatmap(
            z=z, x=names, y=names, text=text, texttemplate="%{text}", customdata=hover,
            hovertemplate="%{customdata}<extra></extra>", colorscale="Blues", zmin=0, zmax=6,
            showscale=col == len(datasets), colorbar={"title": "−log10 p"},
        ), row=1, col=col)  # fmt: skip
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    corr = "Holm" if options.correction == "holm" else "Benjamini–Hochberg"
    fig.update_layout(template="plotly_white", height=420,
                      title=f"Wilcoxon signed-rank tests ({options.pairing} pairs), {corr}-corrected p; "
                      f"* significant at α = {options.alpha:g}")  # fmt: skip
    return fig


def rater_figure(raters: pd.DataFrame) -> go.Figure:
    """P.910 bias against inconsistency per rater; BT.500 rejections and raters with failed gold items marked."""
    rejected = raters["rejected_bt500"].astype(bool)
    gold = raters["gold_failures"].fillna(0) > 0
    fig = go.Figure()
    groups = (("kept", ~rejected & ~gold, "circle", "#1f77b4"), ("failed gold item(s)", ~rejected & gold,
              "diamond", "#ff7f0e"), ("BT.500 rejected", rejected, "x", "#d62728"))  # fmt: skip
    for name, mask, symbol, colour in groups:
        part = raters[mask]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part["bias"], y=part["inconsistency"], mode="markers+text", name=name, text=part["rater"],
            textposition="top center", marker={"symbol": symbol, "size": 11, "color": colour},
            customdata=part[["n", "gold_failures", "retest_r"]].to_numpy(),
            hovertemplate="rater %{text}<br>bias %{x:.2f}, inconsistency %{y:.2f}<br>%{customdata[0]} ratings, "
            "%{customdata[1]} failed gold, retest r %{customdata[2]:.2f}<extra></extra>",
        ))  # fmt: skip
    fig.add_vline(x=0, line_dash="dot", line_color="#999")
    fig.update_layout(
        template="plotly_white",
        title="Raters: P.910 bias and inconsistency",
        xaxis_title="bias (score points; > 0 rates higher than the others)",
        yaxis_title="inconsistency (SD of the rater's noise)",
        legend_title="rater",
    )
    fig.update_yaxes(rangemode="tozero")
    return fig


# --- Gallery ----------------------------------------------------------------------------------------------------


def center_crop_png(path: Path, size: int) -> tuple[str, tuple[int, int]]:
    """A data URI of the central `size` × `size` pixels of an image (smaller images whole), and the image size."""
    pixels = load_image(path).pixels
    height, width = pixels.shape[:2]
    h, w = min(size, height), min(size, width)
    top, left = (height - h) // 2, (width - w) // 2
    crop = pixels[top : top + h, left : left + w]
    image = Image.fromarray(crop[:, :, 0] if crop.shape[2] == 1 else crop)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), (width, height)


def gallery(stimuli: pd.DataFrame, ratings: pd.DataFrame, methods: list[str], *, images: int, crop: int) -> str:
    """Per image (the first `images` by dataset and name), the centre crops of every rated method side by side,
    each captioned with its method and per-image MOS (and the reference when the study rates `hr`)."""
    test = stimuli[stimuli["kind"] == "test"]
    image_mos = ratings.groupby(["method", "dataset", "image"])["score"].mean()
    order = {m: i for i, m in enumerate(methods)}
    blocks = []
    chosen = sorted({(str(d), str(i)) for d, i in zip(test["dataset"], test["image"], strict=True)})[:images]
    for dataset, image in chosen:
        shown = test[(test["dataset"] == dataset) & (test["image"] == image)]
        shown = shown.assign(order=shown["method"].map(lambda m: order.get(str(m), len(order)))).sort_values("order")
        figures = []
        for row in shown.to_dict("records"):
            method = str(row["method"])
            try:
                uri, (width, height) = center_crop_png(Path(str(row["path"])), crop)
            except (SrevalError, OSError) as exc:
                figures.append(f'<figure class="crop"><figcaption>{_esc(method)}: cannot read the stimulus '
                               f"({_esc(exc)})</figcaption></figure>")  # fmt: skip
                continue
            score = image_mos.get((method, dataset, image), math.nan)
            figures.append(
                f'<figure class="crop"><img src="{uri}" alt="{_esc(method)}" width="{min(crop, width)}" '
                f'height="{min(crop, height)}"><figcaption><b>{_esc(method)}</b><br>MOS {_fmt(score, 2)}'
                "</figcaption></figure>"
            )
        blocks.append(f'<div class="gallery-row"><h3>{_esc(dataset)} / {_esc(image)}</h3>'
                      f'<div class="crops">{"".join(figures)}</div></div>')  # fmt: skip
    return "".join(blocks)


# --- The page ---------------------------------------------------------------------------------------------------


class _Figures:
    """Turns figures into `<div>`s; plotly.js is embedded with the first one only."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: go.Figure, name: str) -> str:
        self.count += 1
        return str(fig.to_html(full_html=False, include_plotlyjs=self.count == 1, div_id=f"figure-{name}",
                               config={"displaylogo": False, "responsive": True}))  # fmt: skip


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{body}</section>'


def build_report(
    inputs: ReportInputs,
    options: AnalysisOptions | None = None,
    *,
    title: str = "MOS study report",
    gallery_images: int = 4,
    crop: int = 128,
) -> tuple[str, Analysis]:
    """The report page (HTML text) and the analysis it shows."""
    options = options or AnalysisOptions()
    result = analyze(inputs.ratings, options)
    analysed = result.ratings
    summary = inputs.summary
    if summary is not None:  # a run may cover more datasets than the study: show the rated ones only
        summary = summary[summary["dataset"].isin(set(analysed["dataset"]))]
        summary = summary if not summary.empty else None
    methods = _method_order(result.mos, summary)
    figure = _Figures()
    simulated = bool(analysed["simulated"].any())
    left_out = int(inputs.ratings["simulated"].sum()) if not options.include_simulated else 0

    parts = [f"<h1>{_esc(title)}</h1>"]
    if simulated:
        parts.append(f'<div class="banner" id="simulated-banner">{_esc(SIMULATED_BANNER)}</div>')
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    ci = "t interval" if options.ci == "t" else f"bootstrap over raters and images ({options.n_boot} replicates)"
    kinds = ", ".join(sorted(map(str, analysed["kind"].unique())))
    parts.append(
        f'<p class="note">Ratings: {_esc(inputs.source)} — {len(analysed)} ratings ({_esc(kinds)}) by '
        f"{analysed['rater'].nunique()} raters, {analysed['method'].nunique()} methods, "
        f"{analysed['dataset'].nunique()} dataset(s)"
        + (f"; {int(analysed['simulated'].sum())} ratings are from simulated raters" if simulated else "")
        + (f"; {left_out} ratings of simulated raters left out" if left_out else "")
        + f". Metrics: {_esc(inputs.results) if inputs.results else 'none (no --results)'}. "
        f"MOS CI: {ci}. Generated {generated} by sreval {_esc(__version__)}.</p>"
    )

    table, note = results_table(result.mos, summary)
    parts.append(_section("table", "Results (SRGAN Table 2 layout)", f'<p class="note">{_esc(note)} Best value of '
                          "each row in bold.</p>" + table))  # fmt: skip

    if summary is None:
        plane = '<p class="note">Skipped: no --results folder, so no RMSE and PI/NIQE.</p>'
    else:
        try:
            pd_points(summary)
            plane = figure(pd_figure(summary), "pd-plane")
        except SrevalError as exc:
            plane = f'<p class="note">Skipped: {_esc(exc)}.</p>'
    parts.append(_section("pd-plane", "Perception–distortion plane", plane))

    parts.append(_section("mos", "MOS", figure(mos_figure(result.mos, methods), "mos")))
    parts.append(_section("distribution", "Rating distributions",
                          figure(distribution_figure(analysed, methods), "distribution")))  # fmt: skip
    if result.wilcoxon.empty:
        significance = '<p class="note">Skipped: fewer than two methods per dataset.</p>'
    else:
        significance = figure(significance_figure(result.wilcoxon, methods, options), "significance")
    parts.append(_section("significance", "Significance matrix", significance))

    raters = result.raters
    rejected = int(raters["rejected_bt500"].sum())
    shown = raters.loc[:, ["rater", "n", "rejected_bt500", "bias", "inconsistency", "retest_r", "gold_failures"]]
    rater_note = (
        f'<p class="note">BT.500 screening would reject {rejected} of {len(raters)} rater(s) (highlighted); '
        "screening only reports, no rater is left out of the tables above.</p>"
    )
    reliability = _frame_table(result.reliability, {}) if not result.reliability.empty else ""
    parts.append(_section(
        "raters", "Rater diagnostics",
        figure(rater_figure(raters), "raters") + rater_note
        + _frame_table(shown, {"n": 0, "bias": 2, "inconsistency": 2, "retest_r": 2, "gold_failures": 0},
                       flag=shown["rejected_bt500"])
        + "<h3>Reliability</h3>" + reliability,
    ))  # fmt: skip

    if inputs.stimuli is None:
        crops = '<p class="note">Skipped: the ratings do not come from a study (--study), so there are no stimuli.</p>'
    else:
        crops = (f'<p class="note">Central {crop}×{crop} crops of the stimuli the raters saw (first {gallery_images} '
                 "images), with the per-image MOS.</p>"
                 + gallery(inputs.stimuli, analysed, methods, images=gallery_images, crop=crop))  # fmt: skip
    parts.append(_section("gallery", "Gallery", crops))

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n"
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
    """Gather a report's inputs: the ratings (a study in the store, or a long CSV), the study's stimuli, and
    the `summary.csv` of a run-benchmarks `--out` folder."""
    from sreval.analysis import read_ratings_csv, validate_ratings

    if (study is None) == (ratings is None):
        raise SrevalError("a report needs exactly one of --study NAME and --ratings FILE.csv")
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

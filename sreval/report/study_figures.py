"""The figures of a study report: MOS with confidence intervals, score distributions, the significance matrix
and the rater diagnostics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sreval.analysis import AnalysisOptions
from sreval.report.html import esc
from sreval.vocabulary import HIGHEST_SCORE, LOWEST_SCORE, SCORE_LABELS, SCORES

#: Colour of each score of the ACR scale in the distribution bars, from bad (red) to excellent (green).
SCORE_COLOURS: dict[int, str] = dict(zip(SCORES, ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641"), strict=True))
#: The MOS axis: the whole scale and a little room above it for the error bars.
_MOS_AXIS = (
    f"MOS ({LOWEST_SCORE} = {SCORE_LABELS[LOWEST_SCORE]} … {HIGHEST_SCORE} = {SCORE_LABELS[HIGHEST_SCORE]})",
    [0, HIGHEST_SCORE + 0.2],
)


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
            "%{customdata[2]} ratings by %{customdata[3]} raters<extra>" + esc(dataset) + "</extra>",
        ))  # fmt: skip
    fig.update_layout(
        barmode="group",
        template="plotly_white",
        title="MOS with 95 % confidence intervals",
        yaxis={"title": _MOS_AXIS[0], "range": _MOS_AXIS[1]},
        legend_title="dataset",
    )
    return fig


def distribution_figure(ratings: pd.DataFrame, methods: list[str]) -> go.Figure:
    """Share of each score of the scale per dataset and method, as 100 % stacked horizontal bars (SRGAN Fig. 5)."""
    scores = ratings.assign(score=ratings["score"].round().astype("int64"))
    counts = scores.groupby(["dataset", "method", "score"]).size().unstack("score", fill_value=0)
    counts = counts.reindex(columns=list(SCORES), fill_value=0)
    order = {m: i for i, m in enumerate(methods)}
    keys = sorted(counts.index, key=lambda k: (str(k[0]), order.get(str(k[1]), len(order))), reverse=True)
    counts = counts.loc[keys]
    share = counts.div(counts.sum(axis=1), axis=0) * 100
    labels = [f"{d} · {m}" for d, m in counts.index]
    fig = go.Figure()
    for score, colour in SCORE_COLOURS.items():
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
                    f"{esc(names[i])} vs {esc(names[j])}<br>corrected p {value:.3g}"
                    f"<br>{esc(better)} rated higher (mean difference {abs(difference):.2f})"
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

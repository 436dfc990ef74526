"""The perception–distortion plane of PIRM 2018: RMSE (x) against the perceptual index (y), lower-left is better.

Input is a `summary.csv` written by `run-benchmarks` / `evaluate`. PI is plotted when the run has it; otherwise
NIQE, and the axis says so (NIQE alone is not PI: PI also needs Ma's score). PIRM's three regions are
RMSE ≤ 11.5, 11.5 < RMSE ≤ 12.5 and 12.5 < RMSE ≤ 16.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from sreval.errors import ParameterError, SrevalError
from sreval.fileutil import atomic_open
from sreval.metrics import metric_info

PIRM_REGIONS = ((0.0, 11.5, "Region 1"), (11.5, 12.5, "Region 2"), (12.5, 16.0, "Region 3"))
_REGION_COLOURS = ("rgba(44,160,44,0.10)", "rgba(255,127,14,0.10)", "rgba(31,119,180,0.10)")
#: The perceptual metrics of the plane's y axis, preferred first: PI, or NIQE alone when Ma's model is missing.
PERCEPTION_METRICS = ("pi", "niqe")


def perception_metric(present: set[str]) -> str | None:
    """The perceptual metric to show of those a run has (the first of `PERCEPTION_METRICS`), or None."""
    return next((name for name in PERCEPTION_METRICS if name in present), None)


def load_summary(results: Path) -> pd.DataFrame:
    """The `summary.csv` of a benchmark run: `results` is the run's output folder or the file itself."""
    path = results / "summary.csv" if results.is_dir() else results
    if not path.is_file():
        raise ParameterError(
            "results", f"{path} not found: results must be the output folder of a benchmark run or its summary.csv"
        )
    summary = pd.read_csv(path)
    expected = {"method", "dataset", "metric", "mean"}
    if not expected <= set(summary.columns):
        raise SrevalError(
            f"{path} is not a sreval summary (columns {sorted(summary.columns)}, need {sorted(expected)})"
        )
    return summary


def pd_points(summary: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """One row per method and dataset with `rmse` and `perception`, and the name of the perception metric."""
    table = summary.pivot_table(index=["method", "dataset"], columns="metric", values="mean", sort=False)
    if "rmse" not in table:
        raise SrevalError("the results have no rmse: score the run with rmse and pi (or niqe) too")
    perception = perception_metric(set(table.columns))
    if perception is None:
        raise SrevalError("the results have neither pi nor niqe: score the run with niqe, ma and pi too")
    points = table[["rmse", perception]].dropna().rename(columns={perception: "perception"}).reset_index()
    if points.empty:
        raise SrevalError(f"no method has both rmse and {perception}")
    return points, perception


def pd_figure(summary: pd.DataFrame, title: str = "Perception–distortion plane (PIRM 2018)") -> go.Figure:
    points, perception = pd_points(summary)
    x_info, y_info = metric_info("rmse"), metric_info(perception)
    if perception == "pi":
        y_label = f"Perceptual index {y_info.label} ({y_info.better})"
    else:
        y_label = f"{y_info.label} (PI unavailable: Ma's model missing; {y_info.better})"
    fig = go.Figure()
    for i, ((low, high, name), colour) in enumerate(zip(PIRM_REGIONS, _REGION_COLOURS, strict=True)):
        fig.add_vrect(x0=low, x1=high, fillcolor=colour, line_width=0, layer="below")
        # Labels above the plot, staggered: regions 2 and 3 are too narrow for side-by-side text.
        fig.add_annotation(x=(low + high) / 2, y=1.01 + 0.045 * i, xref="x", yref="paper", showarrow=False,
                           text=f"{name}: {x_info.label} ≤ {high}", font={"size": 11})
    for dataset, group in points.groupby("dataset", sort=False):
        fig.add_trace(go.Scatter(
            x=group["rmse"], y=group["perception"], mode="markers+text", name=str(dataset),
            text=group["method"], textposition="top center",
            customdata=group[["method", "dataset"]].to_numpy(),
            hovertemplate=(
                f"method %{{customdata[0]}}<br>dataset %{{customdata[1]}}<br>{x_info.label} %{{x:.3f}}<br>"
                f"{y_info.label} %{{y:.3f}}<extra></extra>"
            ),
        ))
    fig.update_layout(title=title, xaxis_title=f"{x_info.label} on Y ({x_info.better})", yaxis_title=y_label,
                      legend_title="dataset", template="plotly_white", margin={"t": 130})
    fig.update_xaxes(rangemode="tozero")
    return fig


def write_html(fig: go.Figure, path: Path) -> Path:
    """Self-contained HTML (plotly.js embedded: opens offline), written atomically."""
    with atomic_open(path, encoding="utf-8") as f:
        fig.write_html(f, include_plotlyjs=True, full_html=True)
    return path

"""HTML pieces of the report pages: escaping, numbers, plain tables, sections and embedded Plotly figures."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def esc(value: object) -> str:
    return html.escape(str(value))


def fmt(value: float, decimals: int) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def frame_table(frame: pd.DataFrame, decimals: dict[str, int], flag: pd.Series | None = None) -> str:
    """A plain HTML table of `frame` (numbers rounded per column; rows where `flag` is true highlighted)."""
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cells = []
        for column in frame.columns:
            value = row[column]
            if isinstance(value, (bool, np.bool_)):
                text = "yes" if value else ""
            elif isinstance(value, (float, np.floating)):
                text = fmt(float(value), decimals.get(str(column), 3))
            else:
                text = "—" if pd.isna(value) else esc(value)
            cls = ' class="name"' if isinstance(value, str) else ""
            cells.append(f"<td{cls}>{text}</td>")
        marked = ' class="flag"' if flag is not None and bool(flag.iloc[i]) else ""
        rows.append(f"<tr{marked}>{''.join(cells)}</tr>")
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


class Figures:
    """Turns figures into `<div>`s; plotly.js is embedded with the first one only."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig: go.Figure, name: str) -> str:
        self.count += 1
        return str(fig.to_html(full_html=False, include_plotlyjs=self.count == 1, div_id=f"figure-{name}",
                               config={"displaylogo": False, "responsive": True}))  # fmt: skip


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'

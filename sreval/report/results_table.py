"""The results table of a study report, laid out like SRGAN's Table 2: datasets as row groups, one column per
method; PSNR, SSIM, PI (or NIQE) and MOS rows, the best value of each row in bold."""

from __future__ import annotations

import math

import pandas as pd

from sreval.metrics import MetricInfo, metric_info
from sreval.report.html import esc, fmt
from sreval.report.pd_plane import perception_metric

#: The distortion rows of the table, before the perceptual one (SRGAN's Table 2).
DISTORTION_METRICS = ("psnr", "ssim")


def method_order(mos: pd.DataFrame, summary: pd.DataFrame | None) -> list[str]:
    """Methods from worst to best mean MOS over the datasets (SRGAN's column order); unrated methods first."""
    rated = mos.groupby("method")["mos"].mean().sort_values(kind="stable")
    unrated = sorted(set(summary["method"]) - set(rated.index)) if summary is not None else []
    return [*unrated, *map(str, rated.index)]


def results_table(mos: pd.DataFrame, summary: pd.DataFrame | None) -> tuple[str, str]:
    """SRGAN Table 2: datasets as row groups, one column per method; PSNR, SSIM, PI (or NIQE) and MOS rows.
    The best value of each row is bold. Returns the HTML table and a note on what it contains."""
    metrics: list[MetricInfo] = []
    note = "MOS with its 95 % confidence interval."
    means: dict[tuple[str, str, str], float] = {}
    if summary is not None:
        present = set(summary["metric"])
        metrics = [metric_info(name) for name in DISTORTION_METRICS if name in present]
        perception = perception_metric(present)
        if perception is not None:
            metrics.append(metric_info(perception))
            if perception != "pi":
                note += f" {metrics[-1].label} is shown because the run has no PI (Ma's model missing)."
        means = {
            (str(m), str(d), str(k)): float(v)
            for m, d, k, v in zip(
                summary["method"], summary["dataset"], summary["metric"], summary["mean"], strict=True
            )
        }
    else:
        note += " MOS only: no objective metrics (no benchmark results given, or they have none of these datasets)."
    methods = method_order(mos, summary)
    datasets = sorted(map(str, mos["dataset"].unique()))  # rated datasets only: it is a study report
    by_key = {(str(r["method"]), str(r["dataset"])): r for r in mos.to_dict("records")}
    head = "<th>dataset</th><th>measure</th>" + "".join(f"<th>{esc(m)}</th>" for m in methods)
    rows = []
    for dataset in datasets:
        lines: list[tuple[str, list[float], list[str], bool]] = []
        for info in metrics:
            values = [means.get((m, dataset, info.name), math.nan) for m in methods]
            texts = [fmt(v, info.table_decimals) for v in values]
            lines.append((info.label_with_unit, values, texts, info.higher_is_better))
        values, texts = [], []
        for m in methods:
            if (m, dataset) in by_key:
                row = by_key[m, dataset]
                values.append(float(row["mos"]))
                texts.append(f"{row['mos']:.2f} <small>[{fmt(row['ci_low'], 2)}, {fmt(row['ci_high'], 2)}]</small>")
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
            group = f'<td class="name" rowspan="{len(lines)}">{esc(dataset)}</td>' if k == 0 else ""
            rows.append(f'<tr>{group}<td class="name">{esc(label)}</td>{cells}</tr>')
    table = f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return table, note

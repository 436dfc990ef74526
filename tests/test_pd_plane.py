"""`sreval plot pd`: a self-contained Plotly HTML of RMSE against PI (or NIQE, labelled), with PIRM's regions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from sreval import assets
from sreval.cli import main
from sreval.errors import SrevalError
from sreval.metrics.perceptual import default_metrics
from sreval.report.pd_plane import pd_figure, pd_points
from tests.cli_helpers import isolate


def _summary(tmp_path: Path, rows: list[tuple[str, str, str, float]]) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    frame = pd.DataFrame(rows, columns=["method", "dataset", "metric", "mean"]).assign(n=5)
    frame.to_csv(folder / "summary.csv", index=False)
    return folder


ROWS = [
    ("bicubic", "set5", "rmse", 9.6), ("bicubic", "set5", "niqe", 7.3),
    ("nn", "set5", "rmse", 12.4), ("nn", "set5", "niqe", 8.1),
    ("bicubic", "set14", "rmse", 13.9), ("bicubic", "set14", "niqe", 7.0),
]


def _plotly_data(html: str) -> list[dict]:
    """The traces as embedded in the page (Plotly.newPlot(id, data, layout, ...))."""
    match = re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\])\s*,\s*\{", html, re.S)
    assert match, "no Plotly.newPlot call in the page"
    return json.loads(match.group(1))


def test_html_is_self_contained_and_has_points_regions_and_hover(tmp_path: Path) -> None:
    results = _summary(tmp_path, ROWS)
    out = tmp_path / "reports" / "pd.html"
    assert main(["plot", "pd", "--results", str(results), "--out", str(out)]) == 0
    html = out.read_text()
    assert "<script src=\"http" not in html  # plotly.js embedded, opens offline
    assert len(html) > 1_000_000
    traces = _plotly_data(html)
    by_name = {t["name"]: t for t in traces}
    assert set(by_name) == {"set5", "set14"}
    assert by_name["set5"]["text"] == ["bicubic", "nn"]
    assert "method %{customdata[0]}" in by_name["set5"]["hovertemplate"]
    assert "NIQE (PI unavailable" in html
    for label in ("Region 1: RMSE ≤ 11.5", "Region 2: RMSE ≤ 12.5", "Region 3: RMSE ≤ 16.0"):
        assert label in html or label.encode("unicode_escape").decode() in html


def test_pi_is_preferred_over_niqe() -> None:
    summary = pd.DataFrame([*ROWS, ("bicubic", "set5", "pi", 6.5)], columns=["method", "dataset", "metric", "mean"])
    points, perception = pd_points(summary)
    assert perception == "pi"
    assert points.to_dict("records") == [{"method": "bicubic", "dataset": "set5", "rmse": 9.6, "perception": 6.5}]
    layout = pd_figure(summary).layout
    assert layout.yaxis.title.text.startswith("Perceptual index PI")
    assert [shape.x1 for shape in layout.shapes] == [11.5, 12.5, 16.0]
    expected = [f"Region {i}: RMSE ≤ {x}" for i, x in ((1, 11.5), (2, 12.5), (3, 16.0))]
    assert [a.text for a in layout.annotations] == expected


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("a", "set5", "psnr", 30.0)], "no rmse"),
        ([("a", "set5", "rmse", 10.0)], "neither pi nor niqe"),
    ],
)
def test_missing_metrics_are_clear_errors(rows: list, message: str) -> None:
    with pytest.raises(SrevalError, match=message):
        pd_points(pd.DataFrame(rows, columns=["method", "dataset", "metric", "mean"]))


def test_cli_errors_on_a_folder_without_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", "pd", "--results", str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    assert "summary.csv not found" in capsys.readouterr().err


def test_the_default_run_is_enough_for_the_pd_plane(
    isolated: Path, tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate(tmp_path, data_root, monkeypatch)
    out = tmp_path / "baselines"
    assert main(["run-benchmarks", "--datasets", "set5", "--out", str(out), "-q"]) == 0
    assert set(pd.read_csv(out / "summary.csv")["metric"]) == {"psnr", "ssim", "rmse", "niqe"}
    assert main(["plot", "pd", "--results", str(out), "--out", str(tmp_path / "pd.html")]) == 0
    assert "bicubic" in (tmp_path / "pd.html").read_text()


def test_ma_and_pi_join_the_defaults_once_ma_model_is_on_this_machine(isolated: Path) -> None:
    assert default_metrics() == ["psnr", "ssim", "rmse", "niqe"]
    installed = assets.assets_cache() / assets.get_asset("nrqm").filename
    installed.parent.mkdir(parents=True)
    installed.write_bytes(b"a model file")  # only looked for, never read, when the defaults are chosen
    assert default_metrics() == ["psnr", "ssim", "rmse", "niqe", "ma", "pi"]
    assert default_metrics({"nrqm": isolated / "elsewhere.mat"}) == ["psnr", "ssim", "rmse", "niqe", "ma", "pi"]

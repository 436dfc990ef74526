"""`sreval report`: the study report page has every section, is self-contained, and renders in Chromium."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sreval.cli import main
from sreval.errors import ParameterError
from sreval.imageio import save_png
from sreval.report.study_report import SECTIONS, SIMULATED_BANNER, ReportInputs, build_report
from sreval.study import DraftImage, DraftMethod, DraftStimulus, StudyDraft, open_study_store
from sreval.study.simulate import simulate

CHROMIUM = Path("/usr/bin/chromium")
METHODS = ("nn", "bicubic", "srgan")
IMAGES = ("baby", "bird", "butterfly")


def make_study(url: str, folder: Path) -> None:
    """3 methods × 3 Set5 images with distinct 96×96 pictures, one gold image, 5 simulated raters."""
    rng = np.random.default_rng(0)
    stimuli = [
        DraftStimulus(f"t{method}{image}".ljust(16, "0")[:16], "test", method, "set5", image, "", None)
        for method in METHODS
        for image in IMAGES
    ]
    stimuli += [
        DraftStimulus("goldhrbaby000000", "gold_hr", None, "set5", "baby", "", 5),
        DraftStimulus("goldnnbaby000000", "gold_nn", None, "set5", "baby", "", 1),
    ]
    stimuli = [dataclasses.replace(s, path=f"{s.public_id}.png") for s in stimuli]
    for s in stimuli:
        save_png(folder / s.path, rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    draft = StudyDraft(
        "pilot",
        folder,
        3,
        {"retest": 0.25, "min_retest_gap": 2},
        [DraftMethod(m, {}) for m in METHODS],
        [DraftImage("set5", image, "0" * 64) for image in IMAGES],
        stimuli,
    )
    with open_study_store(url) as store:
        store.create_study(draft)
        simulate(store, "pilot", raters=5, workers=2, seed=4)


def write_results(folder: Path) -> None:
    """A run-benchmarks --out folder's summary.csv for the rated methods (no PI: NIQE stands in)."""
    level = {"nn": 0.0, "bicubic": 1.0, "srgan": -2.0}
    rows = [
        {"method": m, "dataset": "set5", "metric": metric, "mean": base + level[m], "n": 3}
        for m in METHODS
        for metric, base in (("psnr", 27.0), ("ssim", 0.8), ("rmse", 12.0), ("niqe", 6.0))
    ]
    folder.mkdir()
    pd.DataFrame(rows).to_csv(folder / "summary.csv", index=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{tmp / 'study.sqlite'}"
    make_study(url, tmp / "stimuli")
    write_results(tmp / "results")
    out = tmp / "pilot.html"
    args = ["report", "--study", "pilot", "--db", url, "--results", str(tmp / "results"), "--out", str(out)]
    assert main([*args, "--include-simulated", "--gallery", "2", "--crop", "64"]) == 0
    return out


def test_report_has_every_section_and_needs_no_network(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert SIMULATED_BANNER in page
    assert page.count('class="plotly-graph-div"') == 5  # PD plane, MOS, distribution, significance, raters
    assert page.count('<img src="data:image/png;base64,') == 2 * len(METHODS)  # 2 images × 3 methods
    assert "NIQE" in page and "PSNR (dB)" in page
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js inline (the browser test checks nothing is fetched)


def test_report_from_a_csv_without_results(tmp_path: Path, report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{report.parent / 'study.sqlite'}"
    csv = tmp_path / "ratings.csv"
    assert main(["study", "export", "--study", "pilot", "--db", url, "--out", str(csv), "--include-simulated"]) == 0
    out = tmp_path / "csv.html"
    assert main(["report", "--ratings", str(csv), "--out", str(out)]) == 2  # only simulated raters: refused
    assert "simulated raters are left out" in capsys.readouterr().err
    assert main(["report", "--ratings", str(csv), "--out", str(out), "--include-simulated"]) == 0
    page = out.read_text(encoding="utf-8")
    assert "MOS only: no objective metrics" in page and "Skipped: the ratings do not come from a study" in page
    assert page.count('class="plotly-graph-div"') == 4  # no PD plane


def test_gallery_bounds_are_the_library_s() -> None:
    """build_report refuses a negative gallery and crops under 8 px before any analysis, naming its parameter."""
    inputs = ReportInputs(pd.DataFrame(), "nothing")
    with pytest.raises(ParameterError, match="crop must be at least 8 pixels, got 4") as caught:
        build_report(inputs, crop=4)
    assert caught.value.parameter == "crop"
    with pytest.raises(ParameterError, match="gallery_images must be at least 0, got -1") as caught:
        build_report(inputs, gallery_images=-1)
    assert caught.value.parameter == "gallery_images"


def _browser_missing(reason: str) -> None:
    if os.environ.get("SREVAL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (SREVAL_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _browser_missing("the playwright package is not installed")
    if not CHROMIUM.is_file():
        _browser_missing(f"no Chromium at {CHROMIUM}")
    errors: list[str] = []
    fetched: list[str] = []  # offline: any request but the file itself and data URIs is refused
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
            page.route(
                re.compile(r"^(?!file:|data:)"), lambda route: (fetched.append(route.request.url), route.abort())
            )
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.plotly .main-svg').length >= 5", timeout=20_000)
            assert page.locator("#simulated-banner").is_visible()
            assert page.locator("#gallery img").count() == 2 * len(METHODS)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == [] and fetched == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000

"""NIQE, Ma and PI as registered metrics, end to end through `run-benchmarks` and `plot pd`.

Ma's real model file is not obtainable here: the Ma/PI path runs on a *stand-in* NRQM model that the test
builds (tests/standin_models.py). Those numbers check the plumbing (features → regression → score → PI →
tables, cache keys), they are not Ma or PI values and are never shown as such.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from standin_models import standin_nrqm_model

from sreval.cli import main
from sreval.imageio import load_image, to_tensor
from sreval.metrics import create_metric, select_metrics
from sreval.metrics.niqe import load_niqe_model, niqe
from sreval.metrics.perceptual import pirm_plane
from sreval.protocol import Protocol


@pytest.fixture
def env(env: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """conftest's `env`, torch's cache under it, and the NIQE parameters of the shared data."""
    monkeypatch.setenv("TORCH_HOME", str(env / "torch"))
    niqe_dir = data_root.parent / "iqa"
    if not (niqe_dir / "niqe" / "modelparameters.mat").is_file():
        pytest.skip("NIQE parameters not available")
    monkeypatch.setenv("SREVAL_ASSETS", str(niqe_dir))
    return env


def _run(env: Path, metrics: str, out: str) -> pd.DataFrame:
    assert main(["run-benchmarks", "--methods", "bicubic,nn", "--datasets", "set5", "--metrics", metrics,
                 "--out", str(env / out), "-q"]) == 0
    return pd.read_csv(env / out / "per_image.csv")


def test_niqe_metric_is_the_pirm_plane_niqe(env: Path, data_root: Path) -> None:
    """Y (MATLAB), 4 px shaved, LIVE model, 96×96 blocks; NIQE is no-reference and lower is better."""
    metric = create_metric("niqe")
    assert not metric.info.needs_reference and not metric.info.higher_is_better
    img = to_tensor(load_image(data_root / "Set5" / "HR" / "img_003_SRF_4_HR.png").pixels)
    plane = pirm_plane(img, Protocol())
    assert plane.shape[-2:] == (248, 248)
    model = load_niqe_model(data_root.parent / "iqa" / "niqe" / "modelparameters.mat")
    assert metric(img, img).item() == niqe(plane, model).item()


def test_missing_nrqm_makes_ma_and_pi_unavailable_and_the_rest_completes(
    env: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    available, unavailable = select_metrics(["psnr", "niqe", "ma", "pi"], Protocol())
    assert [m.info.name for m in available] == ["psnr", "niqe"]
    assert set(unavailable) == {"ma", "pi"} and "NRQM_model.mat" in unavailable["ma"]
    assert "sreval assets add nrqm PATH" in unavailable["pi"]

    per_image = _run(env, "psnr,rmse,niqe,ma,pi", "o")
    out = capsys.readouterr().out
    assert "ma: unavailable" in out and "pi: unavailable" in out
    assert "metric ma unavailable: NRQM_model.mat" in caplog.text
    assert set(per_image["metric"]) == {"psnr", "rmse", "niqe"}  # no zero or NaN rows for ma/pi
    assert per_image["value"].notna().all()
    summary = pd.read_csv(env / "o" / "summary.csv")
    assert not summary["metric"].isin(["ma", "pi"]).any()


def test_standin_nrqm_runs_the_whole_ma_and_pi_path(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """STAND-IN model: checks that PI = ((10 - Ma) + NIQE) / 2 per image and that values reach the tables."""
    assert main(["assets", "add", "nrqm", str(standin_nrqm_model(env / "standin.mat", seed=1))]) == 0
    per_image = _run(env, "niqe,ma,pi", "a")
    wide = per_image.pivot_table(index=["method", "image"], columns="metric", values="value")
    assert len(wide) == 10
    torch.testing.assert_close(
        torch.tensor(wide["pi"].to_numpy()), torch.tensor(((10 - wide["ma"]) + wide["niqe"]).to_numpy() / 2)
    )
    assert set(pd.read_csv(env / "a" / "summary.csv")["metric"]) == {"niqe", "ma", "pi"}
    capsys.readouterr()

    # Same outputs again: everything from the cache. Another model file: Ma and PI recomputed, NIQE cached.
    _run(env, "niqe,ma,pi", "b")
    assert "metric values: 0 computed, 30 from cache" in capsys.readouterr().out
    assert main(["assets", "add", "nrqm", str(standin_nrqm_model(env / "other.mat", seed=2))]) == 0
    capsys.readouterr()
    other = _run(env, "niqe,ma,pi", "c")
    assert "metric values: 20 computed, 10 from cache" in capsys.readouterr().out
    assert not other.set_index(["method", "image", "metric"])["value"].equals(
        per_image.set_index(["method", "image", "metric"])["value"]
    )


def test_pd_plane_from_a_real_run_falls_back_to_niqe(env: Path) -> None:
    _run(env, "rmse,niqe", "o")
    html_path = env / "pd.html"
    assert main(["plot", "pd", "--results", str(env / "o"), "--out", str(html_path)]) == 0
    html = html_path.read_text()
    assert "NIQE (PI unavailable" in html and "bicubic" in html


def test_explicit_asset_paths_on_the_command_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--asset NAME=PATH` comes first; a wrong path makes the metric unavailable, a wrong name is an error."""
    standin = standin_nrqm_model(env / "standin.mat", seed=3)  # STAND-IN model: plumbing only
    assert main(["run-benchmarks", "--methods", "nn", "--datasets", "set5", "--metrics", "ma",
                 "--asset", f"nrqm={standin}", "--out", str(env / "o"), "-q"]) == 0
    assert set(pd.read_csv(env / "o" / "per_image.csv")["metric"]) == {"ma"}
    capsys.readouterr()
    assert main(["run-benchmarks", "--methods", "nn", "--datasets", "set5", "--metrics", "psnr,ma",
                 "--asset", f"nrqm={env / 'missing.mat'}", "--out", str(env / "p"), "-q"]) == 0
    assert "ma: unavailable" in capsys.readouterr().out
    assert main(["run-benchmarks", "--methods", "nn", "--datasets", "set5", "--metrics", "ma",
                 "--asset", "lpips=x.pth", "--out", str(env / "q"), "-q"]) == 2
    assert "unknown asset 'lpips'" in capsys.readouterr().err

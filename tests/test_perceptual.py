"""NIQE, Ma and PI as registered metrics, end to end through `run-benchmarks` and `plot pd`.

Ma's real model file is not obtainable here: the Ma/PI path runs on a *stand-in* NRQM model that the test
builds (tests/standin_models.py). Those numbers check the plumbing (features → regression → score → PI →
tables, cache keys), they are not Ma or PI values and are never shown as such.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from standin_models import standin_nrqm_model

from sreval.assets import ASSETS
from sreval.cli import main
from sreval.errors import SrevalError
from sreval.imageio import load_image, to_tensor
from sreval.metrics import create_metric, select_metrics
from sreval.metrics.niqe import load_niqe_model, niqe, shipped_niqe_model
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


# --- NIQE needs no file; Ma takes either of its model files -----------------------------------------------------


def test_niqe_is_available_with_no_model_file(isolated: Path) -> None:
    """No SREVAL_ASSETS, empty caches, offline: NIQE runs on the parameters that ship with sreval."""
    available, unavailable = select_metrics(["niqe"], Protocol())
    assert unavailable == {} and [m.info.name for m in available] == ["niqe"]
    metric = available[0]
    assert metric.model_path is None  # type: ignore[attr-defined]
    assert metric.cache_key.endswith(f"@niqe:{shipped_niqe_model().digest()[:16]}")
    flat_and_ramp = torch.arange(256 * 256, dtype=torch.float64).reshape(1, 1, 256, 256) % 251
    assert torch.isfinite(metric(flat_and_ramp.to(torch.uint8), flat_and_ramp.to(torch.uint8))).all()


def test_niqe_without_a_file_equals_niqe_with_the_live_mat(isolated: Path, data_root: Path, tmp_path: Path) -> None:
    """Same numbers, so the same values and the same cache key; a file with other numbers gets another key."""
    mat = data_root.parent / "iqa" / "niqe" / "modelparameters.mat"
    if not mat.is_file():
        pytest.skip(f"{mat} not available")
    img = to_tensor(load_image(data_root / "Set5" / "HR" / "img_003_SRF_4_HR.png").pixels)
    shipped, from_mat = create_metric("niqe"), create_metric("niqe", asset_paths={"niqe": mat})
    assert from_mat.model_path == mat  # type: ignore[attr-defined]
    assert torch.equal(shipped(img, img), from_mat(img, img))
    assert shipped.cache_key == from_mat.cache_key
    model = shipped_niqe_model()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"mu": (model.mu * 1.01).tolist(), "cov": model.cov.tolist()}))
    changed = create_metric("niqe", asset_paths={"niqe": other})
    assert changed.model_path == other  # type: ignore[attr-defined]
    assert changed.cache_key != shipped.cache_key and not torch.equal(changed(img, img), shipped(img, img))


def test_a_named_niqe_file_that_is_missing_is_not_replaced_by_the_shipped_one(isolated: Path) -> None:
    _, unavailable = select_metrics(["niqe"], Protocol(), {"niqe": isolated / "missing.mat"})
    assert "missing.mat" in unavailable["niqe"]


def test_ma_uses_the_authors_model_file_too(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The authors' model.mat is looked for (SREVAL_ASSETS/sr-metric/model.mat) and verified by its Git blob: a
    STAND-IN there is refused; pinned to the stand-in's blob, the same file is found and used."""
    _, unavailable = select_metrics(["ma"], Protocol())
    first, _, second = unavailable["ma"].partition(" Or the authors' file: ")
    assert first.startswith("NRQM_model.mat") and "sreval assets add nrqm PATH" in first
    assert second.startswith("model.mat") and "sreval assets download nrqm-original" in second
    original = isolated / "assets" / "sr-metric" / "model.mat"
    original.parent.mkdir(parents=True)
    standin_nrqm_model(original, seed=4)
    monkeypatch.setenv("SREVAL_ASSETS", str(isolated / "assets"))
    with pytest.raises(SrevalError, match=r"git blob .* it is not the nrqm-original asset"):
        create_metric("ma")
    raw = original.read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()
    monkeypatch.setitem(ASSETS, "nrqm-original", dataclasses.replace(ASSETS["nrqm-original"], git_blob=blob))
    assert create_metric("ma").model_path == original  # type: ignore[attr-defined]
    assert create_metric("ma", asset_paths={"nrqm-original": original}).model_path == original  # type: ignore[attr-defined]

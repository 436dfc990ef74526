"""The performance scripts' `--json PATH`: the figures an unattended run leaves on disk.

The writer (`perf/timing.py`'s JsonFigures) is tested directly: the file is rewritten whole after every row and a
failed or unfinished write never replaces it. Each script then runs in a subprocess on tiny settings on the CPU,
and its JSON is checked: the common keys, one row per set/image/model with finite positive times, `complete`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from PIL import Image

PERF = Path(__file__).resolve().parents[1] / "perf"


def _timing() -> ModuleType:
    spec = importlib.util.spec_from_file_location("perf_timing", PERF / "timing.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


timing = _timing()


def _read(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


# --- The writer -------------------------------------------------------------------------------------------


def test_writer_rewrites_the_whole_file_after_every_row(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    figures = timing.JsonFigures(path, "metrics", torch.device("cpu"), {"repeat": 1, "sets": ["set5"]})
    figures.write()
    doc = _read(path)
    assert doc == {
        "script": "metrics", "device": "cpu", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "settings": {"repeat": 1, "sets": ["set5"]}, "rows": [], "totals": {}, "complete": False,
    }  # fmt: skip
    figures.add_row({"set": "set5", "seconds": 0.5, "ratio": math.nan})
    assert _read(path)["rows"] == [{"set": "set5", "seconds": 0.5, "ratio": None}]  # strict JSON: no NaN
    figures.add_row({"set": "set14", "seconds": 1.5, "ratio": 2.0})
    figures.finish({"seconds": 2.0})
    doc = _read(path)
    assert [row["set"] for row in doc["rows"]] == ["set5", "set14"]
    assert doc["totals"] == {"seconds": 2.0} and doc["complete"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary file left behind


def test_a_failed_write_never_replaces_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.json"
    figures = timing.JsonFigures(path, "train", torch.device("cpu"), {})
    figures.add_row({"model": "srresnet"})
    before = path.read_text()

    with pytest.raises(TypeError):  # a value JSON cannot hold: nothing is written
        figures.add_row({"model": object()})
    assert path.read_text() == before
    figures.rows.pop()

    def killed(fd: int) -> None:  # the process dies after writing the temporary file, before the rename
        raise OSError("killed")

    monkeypatch.setattr(timing.os, "fsync", killed)
    with pytest.raises(OSError, match="killed"):
        figures.add_row({"model": "rrdbnet"})
    assert path.read_text() == before and len(_read(path)["rows"]) == 1
    monkeypatch.undo()

    replaced: list[str] = []
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:  # the file renamed into place is complete
        replaced.append(Path(src).read_text())
        real_replace(src, dst)

    monkeypatch.setattr(timing.os, "replace", replace)
    figures.finish({})
    assert len(replaced) == 1 and json.loads(replaced[0])["complete"] is True
    assert _read(path)["rows"] == [{"model": "srresnet"}, {"model": "rrdbnet"}]


def test_no_path_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    figures = timing.JsonFigures(None, "inference", torch.device("cpu"), {})
    figures.add_row({"model": "srresnet"})
    figures.finish({})
    assert list(tmp_path.iterdir()) == []


# --- The scripts ------------------------------------------------------------------------------------------


def _run(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(PERF / f"{script}.py"), *args],
        cwd=PERF.parent, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _figures(script: str, path: Path, rows: int) -> dict[str, Any]:
    doc = _read(path)
    assert doc["script"] == script and doc["complete"] is True
    assert doc["device"] == "cpu" and doc["torch"] == torch.__version__ and doc["threads"] >= 1
    assert isinstance(doc["settings"], dict) and isinstance(doc["totals"], dict)
    assert len(doc["rows"]) == rows
    assert not path.with_name(path.name + ".tmp").exists()
    return doc


def _positive(record: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = record[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


def test_metrics_json(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "metrics.json"
    done = _run("metrics", "--data-root", str(data_root), "--sets", "set5", "--repeat", "1", "--json", str(out))
    assert "set14" not in done.stdout  # only the sets asked for
    doc = _figures("metrics", out, rows=1)
    assert doc["settings"]["sets"] == ["set5"]
    (row,) = doc["rows"]
    assert row["set"] == "set5" and row["images"] == 5
    _positive(row, "sreval_s", "reference_s", "ratio")
    assert 0 <= row["max_abs_dpsnr"] <= 1e-6 and 0 <= row["max_abs_dssim"] <= 1e-9
    assert doc["totals"]["images"] == 5
    _positive(doc["totals"], "sreval_s", "reference_s", "ratio")


def test_metrics_two_methods_json(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "two.json"
    args = ["--two-methods", "--threads", "1", "--sets", "set5", "--repeat", "1", "--json", str(out)]
    _run("metrics", "--data-root", str(data_root), *args)
    doc = _figures("metrics", out, rows=1)
    assert doc["settings"]["mode"] == "two-methods"
    (row,) = doc["rows"]
    assert row["set"] == "set5" and row["images"] == 5
    for what in ("two_methods", "first_method", "second_method", "ssim_first_method", "ssim_second_method"):
        _positive(row, f"{what}_before_s", f"{what}_after_s", f"{what}_ratio")


def test_metrics_unknown_set_is_a_parser_error() -> None:
    done = _run("metrics", "--sets", "set5,set99", check=False)
    assert done.returncode == 2
    assert "set99" in done.stderr and "set5, set14, bsd100, urban100" in done.stderr


def test_inference_json(tmp_path: Path) -> None:
    out = tmp_path / "inference.json"
    _run("inference", "--device", "cpu", "--size", "16", "--models", "srresnet", "--repeats", "1", "--json", str(out))
    doc = _figures("inference", out, rows=1)
    assert doc["settings"]["size"] == 16 and doc["settings"]["options"]["precision"] == "fp32"
    (row,) = doc["rows"]
    assert row["model"] == "srresnet" and row["engine_tile"] == 192 and row["engine_batch"] == 8
    _positive(row, "gflop", "naive_s", "naive_mpx_s", "naive_tflop_s", "engine_s", "engine_mpx_s")
    _positive(row, "engine_tflop_s", "ratio")
    assert 0 <= row["max_abs_diff"] < 1e-3


def test_train_json(tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    args = ["--models", "srresnet", "--batch", "1", "--crop", "24", "--steps", "1", "--warmup", "1"]
    _run("train", "--device", "cpu", *args, "--json", str(out))
    doc = _figures("train", out, rows=1)
    assert doc["settings"]["steps"] == 1 and doc["settings"]["warmup"] == 1
    (row,) = doc["rows"]
    assert row["model"] == "srresnet" and row["recipe"] == "srresnet-mse" and row["batch"] == 1 and row["crop"] == 24
    _positive(row, "naive_it_s", "naive_samples_s", "sreval_it_s", "sreval_samples_s", "ratio", "median_ratio")
    _positive(row, "naive_last_loss", "sreval_last_loss")
    assert isinstance(row["sreval_settings"], str) and "fp32" in row["sreval_settings"]


@pytest.fixture
def iqa_data(data_root: Path, tmp_path: Path) -> Path:
    """A small data root: the NIQE parameters, two calibration images (the second staged as PNG) and one Urban100
    image (a 400×300 crop), from the shared data."""
    iqa = data_root.parent / "iqa"
    dist_dir = iqa / "calibration_pyiqa" / "dist_dir"
    calibration = sorted([*dist_dir.glob("*.bmp"), *dist_dir.glob("*.png")])
    if not (iqa / "niqe" / "modelparameters.mat").is_file() or len(calibration) < 2:
        if os.environ.get("SREVAL_REQUIRE_DATA") == "1":
            pytest.fail(f"NIQE parameters and calibration images under {iqa} are required (SREVAL_REQUIRE_DATA=1)")
        pytest.skip(f"NIQE parameters and calibration images under {iqa} not available")
    root = tmp_path / "data"
    (root / "iqa").mkdir(parents=True)
    (root / "iqa" / "niqe").symlink_to(iqa / "niqe")
    staged = root / "iqa" / "calibration_pyiqa" / "dist_dir"
    staged.mkdir(parents=True)
    (staged / calibration[0].name).symlink_to(calibration[0])
    Image.open(calibration[1]).save(staged / f"{calibration[1].stem}.png")  # lossless
    urban = root / "benchmarks" / "Urban100" / "HR"
    urban.mkdir(parents=True)
    first = sorted((data_root / "Urban100" / "HR").glob("*.png"))[0]
    Image.open(first).crop((0, 0, 400, 300)).save(urban / first.name)
    return root


def test_perceptual_json(tmp_path: Path, iqa_data: Path) -> None:
    pytest.importorskip("pyiqa", reason="perf/perceptual.py compares with pyiqa, not installed in this environment")
    out = tmp_path / "perceptual.json"
    done = _run("perceptual", "--data-root", str(iqa_data), "--images", "3", "--skip-nrqm", "--json", str(out))
    assert "only 1 of the 3" in done.stdout  # Urban100 images asked for but not there: those that exist
    doc = _figures("perceptual", out, rows=3)
    assert doc["settings"]["calibration_images"] == 2 and doc["settings"]["urban100_images"] == 1
    names = [row["image"] for row in doc["rows"]]
    calibration = sorted(p.name for p in (iqa_data / "iqa" / "calibration_pyiqa" / "dist_dir").iterdir())
    assert names[:2] == calibration and names[1].endswith(".png")
    for row in doc["rows"]:
        _positive(row, "width", "height", "niqe_sreval_s", "niqe_pyiqa_s", "niqe_ratio")
        assert 0 <= row["niqe_abs_diff"] < 10
        assert all(row[k] is None for k in ("nrqm_sreval_s", "nrqm_pyiqa_s", "nrqm_ratio", "nrqm_max_rel_diff"))
    assert doc["rows"][2]["width"] == 392 and doc["rows"][2]["height"] == 292  # the crop, 4 px shaved
    assert doc["totals"]["images"] == 3 and doc["totals"]["nrqm_ratio"] is None
    _positive(doc["totals"], "niqe_sreval_s", "niqe_pyiqa_s", "niqe_ratio")


def test_perceptual_without_images_is_one_error_line(tmp_path: Path) -> None:
    done = _run("perceptual", "--data-root", str(tmp_path), "--json", str(tmp_path / "p.json"), check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "calibration" in line and "Urban100" in line

"""`sreval run-benchmarks` / `runs` end to end: real files, a real database, the real CLI; and its entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sreval.methods.baselines as methods_module
from sreval.cli import main
from sreval.methods.base import MethodInput
from sreval.results import open_store
from tests.cli_helpers import isolate, results_db


@pytest.fixture
def env(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(tmp_path, data_root, monkeypatch)


def test_run_benchmarks_writes_csvs_store_and_reuses_cache(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = env / "out"
    args = ["run-benchmarks", "--methods", "bicubic,nn", "--datasets", "set5", "--metrics", "psnr,ssim"]
    assert main([*args, "--out", str(out), "-q"]) == 0
    first = capsys.readouterr().out
    assert "SR images: 10 computed, 0 from cache" in first and "metric values: 20 computed" in first

    per_image = pd.read_csv(out / "per_image.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert list(per_image.columns) == ["method", "dataset", "image", "metric", "value"]
    assert list(summary.columns) == ["method", "dataset", "metric", "mean", "n"]
    assert len(per_image) == 2 * 5 * 2
    bicubic = summary.set_index(["method", "metric"]).loc[("bicubic", "psnr")]
    assert bicubic["n"] == 5 and bicubic["mean"] == pytest.approx(28.42, abs=0.01)
    mean_of_images = per_image.query("method == 'bicubic' and metric == 'psnr'")["value"].mean()
    assert bicubic["mean"] == pytest.approx(mean_of_images, abs=1e-9)

    assert main([*args, "--out", str(out), "-q"]) == 0
    second = capsys.readouterr().out
    assert "nothing new computed" in second
    assert "SR images: 0 computed, 10 from cache" in second and "metric values: 0 computed, 20 from cache" in second
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_image.csv"), per_image)

    store = open_store(results_db(env))
    try:
        runs = store.list_runs()
        assert list(runs["n_values"]) == [20, 20]
        run = store.get_run(int(runs["id"].iloc[-1]))
    finally:
        store.close()
    assert run.command == "run-benchmarks" and run.sreval_version
    assert run.protocol["scale"] == 4 and run.protocol["shave"] == 4 and run.protocol["degradation"] == "uint8"
    assert run.protocol["y_mode"] == "matlab" and run.protocol["protocol_version"]
    assert set(run.dataset_checksums) == {"set5"} and len(run.dataset_checksums["set5"]) == 64
    assert run.device.startswith("cpu") and run.timings["total"] > 0
    assert {m.name for m in run.methods} == {"bicubic", "nn"}


def test_protocol_change_recomputes_and_no_cache_recomputes(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["run-benchmarks", "--methods", "bicubic", "--datasets", "set5", "--out", str(env / "o"), "-q"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--degradation", "double"]) == 0
    assert "SR images: 5 computed, 0 from cache" in capsys.readouterr().out
    assert main([*base, "--no-cache"]) == 0
    assert "SR images: 5 computed, 0 from cache" in capsys.readouterr().out


def test_interrupted_run_stores_nothing(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = {"n": 0}
    real = methods_module.Bicubic.super_resolve

    def interrupted(self: methods_module.Bicubic, item: MethodInput) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, item)

    monkeypatch.setattr(methods_module.Bicubic, "super_resolve", interrupted)
    out = env / "out"
    code = main(["run-benchmarks", "--methods", "bicubic", "--datasets", "set5", "--out", str(out), "-q"])
    assert code == 130
    assert "nothing was stored" in capsys.readouterr().err
    assert not (out / "per_image.csv").exists()
    store = open_store(results_db(env))
    try:
        assert store.list_runs().empty
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "bicubik"], "unknown method 'bicubik'; available: nn, bicubic"),
        (["--datasets", "set6"], "unknown dataset 'set6'; known: set5, set14, bsd100, urban100"),
        (["--metrics", "psnr,lpips"], "unknown metric 'lpips'"),
        (["--device", "cuda:7"], "no CUDA GPU is available"),
        (["--methods", "folder:/nonexistent/outputs"], "/nonexistent/outputs is not a folder"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    env: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    if "cuda" in args[-1]:
        pytest.importorskip("torch")
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    code = main(["run-benchmarks", "--datasets", "set5", "--out", str(env / "o"), "-q", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_unreachable_database_fails_before_computing(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run-benchmarks", "--methods", "bicubic", "--datasets", "set5", "--out", str(env / "o"), "-q",
                 "--db", "postgresql+psycopg2://nobody:secret@127.0.0.1:1/none"])
    err = capsys.readouterr().err
    assert code == 2 and "127.0.0.1:1" in err and "secret" not in err
    assert not (env / "cache").exists()


@pytest.mark.postgres
def test_run_benchmarks_into_postgresql(env: Path, pg_database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run-benchmarks", "--methods", "nn", "--datasets", "set5", "--metrics", "psnr,ssim",
                 "--out", str(env / "o"), "-q", "--db", pg_database_url]) == 0
    store = open_store(pg_database_url)
    try:
        values = store.run_values(int(store.list_runs()["id"].iloc[0]))
    finally:
        store.close()
    assert len(values) == 10 and set(values["method"]) == {"nn"}
    assert main(["runs", "--db", pg_database_url]) == 0
    assert "run-benchmarks" in capsys.readouterr().out


def test_console_script_and_module_entry_points() -> None:
    script = str(Path(sys.executable).parent / "sreval")
    for cmd in ([sys.executable, "-m", "sreval", "--version"], [script, "--version"]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0 and result.stdout.startswith("sreval ")


def test_missing_data_root_fails_before_any_work(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run-benchmarks", "--datasets", "set5,urban100", "--out", str(env / "o"), "-q",
                 "--data-root", str(env / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and "105 benchmark file(s) missing" in err and "SREVAL_DATA_ROOT" in err
    assert not (env / "cache").exists()


def test_out_path_that_is_a_file_is_an_error_before_work(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = env / "taken"
    blocker.write_text("not a folder")
    code = main(["run-benchmarks", "--methods", "nn", "--datasets", "set5", "--out", str(blocker), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and str(blocker) in err and "Traceback" not in err
    assert not (env / "cache").exists()


def test_workers_option_changes_speed_only_and_refuses_zero(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run-benchmarks", "--methods", "bicubic,nn", "--datasets", "set5", "--metrics", "psnr,ssim,niqe", "-q",
            "--no-cache"]  # fmt: skip
    for workers in ("1", "2"):
        assert main([*args, "--workers", workers, "--out", str(env / workers)]) == 0
    capsys.readouterr()
    assert (env / "1" / "per_image.csv").read_bytes() == (env / "2" / "per_image.csv").read_bytes()
    assert main([*args, "--workers", "0", "--out", str(env / "0")]) == 2
    err = capsys.readouterr().err
    assert "workers" in err and "Traceback" not in err

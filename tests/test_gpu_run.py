"""The GPU run's preparation on the CPU: what `perf/gpu_stage.py` stages, and `perf/gpu_run.py --dry-run` running
every step clean on it at toy size, within the output limits of a device call.

The dry run's model is a toy (4 steps at batch 2): nothing here is a result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "perf"))

import gpu_run  # noqa: E402
import gpu_stage  # noqa: E402
import gpu_steps  # noqa: E402


@pytest.fixture(scope="module")
def staged(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data staged as for the device (no packages: the dry run uses this interpreter's)."""
    out = tmp_path_factory.mktemp("stage") / ".gpu"
    gpu_stage.stage(data_root.parent, out, urban100=1, packages=False)
    return out


def test_staging_copies_the_benchmarks_byte_for_byte_and_the_rest_as_lossless_png(
    staged: Path, data_root: Path
) -> None:
    manifest = json.loads((staged / gpu_stage.MANIFEST).read_text())
    hr = [k for k in manifest["files"] if "/HR/" in k]
    assert len(hr) == 5 + 14 + 100 + 1
    assert len([k for k in manifest["files"] if "/T91/" in k]) == 91
    gpu_stage.check_staged(staged)  # every byte or pixel against its source
    assert (staged / "data/benchmarks/BSD100/HR").is_dir() and not (staged / "data/training/T91/t1.bmp").exists()


def test_a_staged_file_that_differs_from_its_source_is_named(staged: Path, tmp_path: Path) -> None:
    manifest = json.loads((staged / gpu_stage.MANIFEST).read_text())
    copy = tmp_path / ".gpu"
    for name in [*manifest["files"], gpu_stage.MANIFEST]:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((staged / name).read_bytes())
    png = copy / "data/training/T91/t1.png"
    pixels = np.asarray(Image.open(png)).copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(png)
    with pytest.raises(gpu_stage.StageError, match=r"t1\.png is not a lossless PNG"):
        gpu_stage.check_staged(copy)


def test_staging_more_than_a_device_call_carries_stops_with_one_error(data_root: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "perf/gpu_stage.py", "--data-root", str(data_root.parent), "--stage", str(tmp_path / "s"),
         "--urban100", "0", "--no-packages", "--limit-mib", "20"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and "over the 20 MiB" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def dry_run(staged: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of `perf/gpu_run.sh --dry-run` on the staged data."""
    try:
        import pyiqa  # noqa: F401
    except ImportError:
        if os.environ.get("SREVAL_REQUIRE_TOOLS") == "1":
            pytest.fail("SREVAL_REQUIRE_TOOLS=1 but pyiqa is not installed (perf-perceptual times against it)")
        pytest.skip("pyiqa is not installed (perf-perceptual times against it)")
    out = tmp_path_factory.mktemp("dry-run") / "out"
    result = subprocess.run(
        ["bash", "perf/gpu_run.sh", "--dry-run", "--stage", str(staged), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_the_dry_run_runs_every_step_clean_within_the_device_limits(dry_run: Path, staged: Path) -> None:
    summary = json.loads((dry_run / "summary.json").read_text())
    plan = gpu_steps.plan_steps(True, staged, dry_run)
    assert [s["name"] for s in summary["steps"]] == [s.name for s in plan.steps]
    assert all(s["status"] == "ok" for s in summary["steps"]), summary["steps"]
    figures = {s["name"]: s.get("figures") for s in summary["steps"]}
    assert figures["tests"]["tests"] >= 6  # collected (skipped without CUDA)
    for name in [s.name for s in plan.steps if s.name.startswith("perf-")]:
        assert figures[name]["complete"] and figures[name]["rows"], name
    assert figures["training"]["run"]["steps"] == 4
    assert figures["training"]["plan"]["rate_from"] == "calibration run"  # the toy perf step used another batch
    assert {r["dataset"] for r in figures["benchmarks"]["summary"]} == {"set5"}
    files = {p.name: p.stat().st_size for p in dry_run.iterdir()}
    assert set(files) == {"summary.json", "log.txt", "model.safetensors", "config.yaml", "card.md",
                          "train_log.csv", "validation.csv", "per_image.csv"}  # fmt: skip
    assert len(files) <= 8 and max(files.values()) <= 16 << 20
    assert "DRY RUN" in (dry_run / "log.txt").read_text()


def _adopt(results: Path, models: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "perf/gpu_adopt.py", str(results), "--models", str(models)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip


def _as_if_from_a_gpu(dry_run: Path, folder: Path, **changes: object) -> Path:
    """A copy of the dry run's folder whose summary claims a GPU: the toy model only exercises the adoption."""
    shutil.copytree(dry_run, folder)
    summary = json.loads((folder / "summary.json").read_text())
    summary["dry_run"] = False
    summary["machine"]["gpu"] = "a stand-in GPU name (test)"
    for step in summary["steps"]:
        step.update(changes.get(step["name"], {}))  # type: ignore[call-overload]
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_adoption_refuses_a_dry_run_an_unfinished_training_and_damaged_weights(dry_run: Path, tmp_path: Path) -> None:
    refused = _adopt(dry_run, tmp_path / "models")
    assert refused.returncode == 1 and "is a dry run" in refused.stderr and "Traceback" not in refused.stderr
    cut = _as_if_from_a_gpu(dry_run, tmp_path / "cut", training={"status": "timed out"})
    assert "did not finish its schedule" in _adopt(cut, tmp_path / "models").stderr
    damaged = _as_if_from_a_gpu(dry_run, tmp_path / "damaged")
    (damaged / "model.safetensors").write_bytes((damaged / "model.safetensors").read_bytes()[:-1] + b"\0")
    assert "damaged or not this run's" in _adopt(damaged, tmp_path / "models").stderr
    assert not (tmp_path / "models").exists()


def test_an_adopted_model_is_a_zoo_entry_with_its_card(dry_run: Path, tmp_path: Path) -> None:
    results = _as_if_from_a_gpu(dry_run, tmp_path / "results")
    adopted = _adopt(results, tmp_path / "models")
    assert adopted.returncode == 0, adopted.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "sreval", "zoo", "show", "srresnet-mse"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "SREVAL_ZOO": str(tmp_path / "models")},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert str(tmp_path / "models") in shown.stdout and "trained" in shown.stdout
    card = (tmp_path / "models" / "srresnet-mse" / "README.md").read_text()
    assert "T91 (Yang et al. 2010" in card and "perf/gpu_srresnet_mse.yaml" in card
    assert "| set5 |" in card and "a stand-in GPU name (test)" in card


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_step_past_its_box_is_stopped_and_the_next_one_still_runs(tmp_path: Path) -> None:
    ignores_sigterm = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); " \
        "time.sleep(60)"  # fmt: skip
    steps = [
        gpu_steps.Step("sleeps", 1.0, 0.0, lambda run, box: [_python("import time; time.sleep(60)")]),
        gpu_steps.Step("ignores-sigterm", 1.0, 0.0, lambda run, box: [_python(ignores_sigterm)]),
        gpu_steps.Step(
            "next",
            30.0,
            0.0,
            lambda run, box: [gpu_steps.MayFail(_python("raise SystemExit(3)")), _python("print('second')")],
        ),
        gpu_steps.Step(
            "share",
            6.0,
            0.0,
            lambda run, box: [
                gpu_steps.MayFail(_python("import time; time.sleep(60)"), share=0.25),
                _python("print('after the share')"),
            ],
        ),
        gpu_steps.Step("too-late", 30.0, 24.0, lambda run, box: [_python("pass")]),
    ]
    run = gpu_run.Run(gpu_steps.Plan(True, steps), tmp_path, tmp_path, budget=25.0, env=dict(os.environ), grace=1.0)
    records = [run.run_step(step, reserved_after=0.0) for step in steps]
    assert [r["status"] for r in records] == ["timed out", "timed out", "ok", "ok", "skipped: not enough time left"]
    assert records[3]["seconds"] < 4  # the failing command had a quarter of the 6 s box
    assert records[0]["seconds"] < 5 and records[1]["seconds"] < 8  # SIGTERM, then SIGKILL after the grace time
    log = (tmp_path / "log.txt").read_text()
    assert "SIGKILL" in log and "up" in log and "exit 3; the step goes on" in log and "second" in log
    assert "after the share" in log


def test_a_step_never_takes_the_time_guaranteed_to_later_steps(tmp_path: Path) -> None:
    step = gpu_steps.Step("perf", 100.0, 5.0, lambda run, box: [_python("pass")])
    run = gpu_run.Run(gpu_steps.Plan(True, [step]), tmp_path, tmp_path, budget=60.0, env=dict(os.environ))
    assert 35 < run.run_step(step, reserved_after=20.0)["box_s"] <= 40
    assert run.run_step(step, reserved_after=58.0)["status"].startswith("skipped")


def test_the_training_rate_and_its_step_count(tmp_path: Path) -> None:
    log = tmp_path / "train_log.csv"
    log.write_text("step,it_s\n50,3.0\n100,210.0\n150,200.0\n200,190.0\n")
    assert gpu_steps.logged_rate(log) == 200.0  # the first row (compilation) is left out
    assert gpu_steps.logged_rate(tmp_path / "missing.csv") is None
    assert gpu_steps.planned_steps(200.0, 245.0) == 36000  # 0.9 × 200 it/s × (245 − 45 s)
    assert gpu_steps.planned_steps(200.0, 10.0) == 100


def test_a_staged_wheel_is_unpacked_only_when_its_module_is_missing(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "packages" / "wheels").mkdir(parents=True)
    for module in ("sreval_staged_probe", "json"):  # one missing here, one this Python has
        with zipfile.ZipFile(stage / "packages" / "wheels" / f"{module}-1-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{module}/__init__.py", "VALUE = 42\n")
    packages = {m: f"wheels/{m}-1-py3-none-any.whl" for m in ("sreval_staged_probe", "json")}
    (stage / gpu_stage.MANIFEST).write_text(json.dumps({"files": {}, "packages": packages}))
    paths = gpu_run.install_packages(stage, tmp_path / "work")
    assert paths == [str(tmp_path / "work" / "site")]
    assert (tmp_path / "work" / "site" / "sreval_staged_probe" / "__init__.py").is_file()
    assert not (tmp_path / "work" / "site" / "json").exists()
    probe = subprocess.run([sys.executable, "-c", "import sreval_staged_probe as p; print(p.VALUE)"],
                           env={**os.environ, "PYTHONPATH": paths[0]}, capture_output=True, text=True)  # fmt: skip
    assert probe.stdout.strip() == "42"


def test_a_fault_in_planning_a_step_fails_that_step_only(tmp_path: Path) -> None:
    def broken(run: gpu_run.Run, box: float) -> list[list[str]]:
        raise ValueError("no rate")

    steps = [gpu_steps.Step("broken", 10.0, 0.0, broken), gpu_steps.Step("next", 10.0, 0.0, lambda r, b: [])]
    run = gpu_run.Run(gpu_steps.Plan(True, steps), tmp_path, tmp_path, budget=30.0, env=dict(os.environ))
    records = [run.run_step(step, reserved_after=0.0) for step in steps]
    assert records[0]["status"] == "failed (planning it: ValueError('no rate'))" and records[1]["status"] == "ok"
    assert gpu_steps.headline({"name": "perf-metrics", "figures": {"totals": {"images": 5}}}) == ""

"""The steps of `perf/gpu_run.py`: their commands, time boxes and figures, on the GPU and in the dry run.

Times are seconds of the run's budget. `box` is the most a step may take, `minimum` the least worth starting it
with, `guaranteed` the time earlier steps must leave for it (only the trained model's steps have one).
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from gpu_run import Run

REPO = Path(__file__).resolve().parent.parent
TRAINING_CONFIG = REPO / "perf" / "gpu_srresnet_mse.yaml"
MODEL = "srresnet-mse"
GPU_SETS = "set5,set14,bsd100"  # what gpu_stage.py stages whole
#: Seconds of a training run that are not steps at the measured rate: start, the compile cache, validations, the
#: final checkpoint and weights.
TRAINING_OVERHEAD_S = 45.0
#: Steps of the short run that measures the training rate when perf-train-srresnet did not.
CALIBRATION_STEPS = 300
#: The rate assumed if neither measured one (a conservative guess for SRResNet on an H100-class GPU at batch 64);
#: the box still ends the run, with a checkpoint.
FALLBACK_IT_S = 60.0
PY = sys.executable
#: Packages the device's python3 does not have and the run does not carry: the dry run hides them, so that a step
#: that needs one fails here and not on the device.
DEVICE_LACKS = ("plotly", "streamlit", "psycopg2", "playwright", "numba")

Commands = Callable[["Run", float], Iterable[list[str]]]


class MayFail(list[str]):
    """A command whose failure does not fail its step: the commands after it do without what it would have made.
    It gets at most `share` of the step's box, so that they keep the rest."""

    def __init__(self, argv: list[str], share: float = 1.0) -> None:
        super().__init__(argv)
        self.share = share


@dataclass
class Step:
    name: str
    box: float
    minimum: float
    make_commands: Commands
    guaranteed: float = 0.0
    figures_file: str | None = None  # JSON written by the step, under the work folder
    read_figures: Callable[[Run], dict[str, Any]] | None = None

    def commands(self, run: Run, box: float) -> Iterable[list[str]]:
        """The step's commands, made one at a time: a later one may depend on what an earlier one wrote."""
        return self.make_commands(run, box)

    def figures(self, run: Run) -> dict[str, Any]:
        if self.read_figures is not None:
            return {"figures": self.read_figures(run)}
        if self.figures_file and (path := run.work / self.figures_file).is_file():
            return {"figures": json.loads(path.read_text())}
        return {}


@dataclass
class Plan:
    dry_run: bool
    steps: list[Step] = field(default_factory=list)
    collect_s: float = 10.0

    def outputs(self, work: Path) -> dict[str, Path]:
        """Files copied into the output folder: the zoo entry, the training logs, the benchmark's values."""
        entry = work / "zoo" / MODEL
        run = work / MODEL
        picks = {
            "model.safetensors": entry / "model.safetensors",
            "config.yaml": entry / "config.yaml",
            "card.md": entry / "README.md",
            "train_log.csv": run / "train_log.csv",
            "validation.csv": run / "validation.csv",
            "per_image.csv": work / "bench" / "per_image.csv",
        }
        checkpoints = sorted((run / "checkpoints").glob("step_*"))
        if not picks["model.safetensors"].is_file() and checkpoints:  # cut short: keep what was trained
            picks["model.safetensors"] = checkpoints[-1] / "generator.safetensors"
        return picks


def gpu_test_files() -> list[str]:
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())


def read_tests(run: Run) -> dict[str, Any]:
    path = run.work / "tests.xml"
    if not path.is_file():
        return {}
    root = ElementTree.parse(path).getroot()
    suite = root.find("testsuite") if root.tag == "testsuites" else root
    assert suite is not None
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    bad = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
           if case.find("failure") is not None or case.find("error") is not None]  # fmt: skip
    return counts | {"not_passed": bad}


def training_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(TRAINING_CONFIG.read_text())
    return config


def measured_rate(run: Run) -> float | None:
    """SRResNet training steps per second that perf-train-srresnet measured with the training's batch."""
    path = run.work / "perf-train-srresnet.json"
    if not path.is_file():
        return None
    rows = [r for r in json.loads(path.read_text()).get("rows", []) if r.get("model") == "srresnet"]
    batch = training_config()["batch"]
    rates = [float(r["sreval_it_s"]) for r in rows if r.get("batch") == batch and r.get("sreval_it_s")]
    return rates[0] if rates else None


def logged_rate(train_log: Path) -> float | None:
    """Steady training steps per second of a run's train_log.csv: the median of its rows after the first (which
    holds the compilation)."""
    if not train_log.is_file():
        return None
    with train_log.open(newline="") as f:
        rates = sorted(float(row["it_s"]) for row in list(csv.DictReader(f))[1:])
    return rates[len(rates) // 2] if rates else None


def planned_steps(rate: float, seconds: float) -> int:
    """Steps that fit `seconds` at `rate`, with a tenth to spare, in whole hundreds (the logging interval)."""
    return max(int(0.9 * rate * max(seconds - TRAINING_OVERHEAD_S, 0.0)) // 100 * 100, 100)


def read_training(run: Run) -> dict[str, Any]:
    folder = run.work / MODEL
    figures: dict[str, Any] = {"plan": run.summary.get("training_plan")}
    if (folder / "run.yaml").is_file():
        figures["run"] = yaml.safe_load((folder / "run.yaml").read_text())
    checkpoints = sorted((folder / "checkpoints").glob("step_*"))
    if checkpoints:
        figures["newest_checkpoint"] = checkpoints[-1].name
    if (folder / "validation.csv").is_file():
        with (folder / "validation.csv").open(newline="") as f:
            figures["validation"] = list(csv.DictReader(f))
    return figures


def read_benchmarks(run: Run) -> dict[str, Any]:
    path = run.work / "bench" / "summary.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {"summary": list(csv.DictReader(f))}


def plan_steps(dry_run: bool, stage: Path, work: Path) -> Plan:
    device = "cpu" if dry_run else "cuda"
    data = stage / "data"
    t91 = str(data / "training" / "T91")
    batch = str(training_config()["batch"])

    def perf(script: str, name: str, args: list[str]) -> Commands:
        return lambda run, box: [[PY, f"perf/{script}.py", "--device", device, *args, "--json", str(work / name)]]

    def tests(run: Run, box: float) -> list[list[str]]:
        return [[PY, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "-q", f"--junitxml={work / 'tests.xml'}",
                 *gpu_test_files()]]  # fmt: skip

    def train_command(folder: str, steps: int, *settings: str) -> list[str]:
        toy = ["batch=2", "crop=24", "workers=0", "compile=false", "validation_sets=[set5]"] if dry_run else []
        sets = [a for item in [*settings, *toy] for a in ("--set", item)]
        return [PY, "-m", "sreval", "train", MODEL, "--out", str(work / folder), "--config", str(TRAINING_CONFIG),
                "--steps", str(steps), *sets, "--train-dir", t91, "--data-root", str(data / "benchmarks"),
                "--device", device]  # fmt: skip

    def training(run: Run, box: float) -> Iterator[list[str]]:
        started = time.monotonic()
        rate, source = measured_rate(run), "perf-train-srresnet"
        if rate is None:  # measure it here: a short run of the same settings, its first rows holding the compile
            steps = 3 if dry_run else CALIBRATION_STEPS
            log_every = 1 if dry_run else CALIBRATION_STEPS // 6
            yield MayFail(train_command("calibration", steps, "validate_every=0", "checkpoint_every=0",
                                        f"log_every={log_every}"), share=1 / 3)  # fmt: skip
            rate, source = logged_rate(work / "calibration" / "train_log.csv"), "calibration run"
        if rate is None:
            rate, source = FALLBACK_IT_S, "no measurement: a guess"
        steps = 4 if dry_run else planned_steps(rate, box - (time.monotonic() - started))
        run.summary["training_plan"] = {"rate_it_s": rate, "rate_from": source, "steps": steps, "dry_run": dry_run}
        validate_every = steps if dry_run else max(steps // 4, 1)  # the dry run validates once, at the end
        yield train_command(MODEL, steps, f"validate_every={validate_every}")

    def benchmarks(run: Run, box: float) -> list[list[str]]:
        sets = "set5" if dry_run else GPU_SETS
        return [
            # --overwrite: the new entry, in the scratch zoo, shadows the built-in untrained one (which stays)
            [PY, "-m", "sreval", "zoo", "add", str(work / MODEL), "--name", MODEL, "--zoo", str(work / "zoo"),
             "--overwrite"],
            [PY, "-m", "sreval", "run-benchmarks", "--methods", MODEL, "--datasets", sets, "--metrics",
             "psnr,ssim,niqe", "--device", device, "--out", str(work / "bench")],
        ]  # fmt: skip

    if dry_run:
        inference = {m: ["--models", m, "--size", "16", "--repeats", "1"] for m in ("srresnet", "rrdbnet")}
        toy_train = ["--batch", "2", "--steps", "1", "--warmup", "1", "--workers", "0", "--train-dir", t91]
        train_perf = {
            m: ["--models", m, "--crop", str(crop), *toy_train] for m, crop in (("srresnet", 24), ("rrdbnet", 32))
        }
        metrics = ["--sets", "set5", "--repeat", "1"]
        perceptual = ["--data-root", str(data), "--images", "0", "--skip-nrqm"]
    else:
        inference = {m: ["--models", m] for m in ("srresnet", "rrdbnet")}
        train_perf = {"srresnet": ["--models", "srresnet", "--batch", batch, "--workers", "8", "--train-dir", t91],
                      "rrdbnet": ["--models", "rrdbnet", "--workers", "8", "--train-dir", t91]}  # fmt: skip
        metrics = ["--sets", GPU_SETS, "--repeat", "3"]
        perceptual = ["--data-root", str(data), "--images", "3"]

    def scaled(seconds: float) -> float:
        return min(seconds, 60.0) if dry_run else seconds

    def perf_step(name: str, script: str, args: list[str], box: float, minimum: float) -> Step:
        return Step(name, scaled(box), 3.0 if dry_run else minimum, perf(script, f"{name}.json", args),
                    figures_file=f"{name}.json")  # fmt: skip

    def model_step(
        name: str, box: float, minimum: float, commands: Commands, guaranteed: float,
        read: Callable[[Run], dict[str, Any]],
    ) -> Step:  # fmt: skip
        """One of the trained model's steps: time is guaranteed to them, however long the steps before take."""
        return Step(name, scaled(box), minimum, commands, guaranteed=guaranteed, read_figures=read)

    steps = [
        Step("tests", scaled(90), 5 if dry_run else 20, tests, read_figures=read_tests),
        perf_step("perf-metrics", "metrics", metrics, 75, 20),  # the float64 reference takes ~15 s a pass
        perf_step("perf-perceptual", "perceptual", perceptual, 60, 15),
        perf_step("perf-inference-srresnet", "inference", inference["srresnet"], 75, 30),
        perf_step("perf-train-srresnet", "train", train_perf["srresnet"], 120, 40),
        model_step("training", 300, 10 if dry_run else 120, training, 20 if dry_run else 200, read_training),
        model_step("benchmarks", 75, 5 if dry_run else 30, benchmarks, 15 if dry_run else 60, read_benchmarks),
        perf_step("perf-inference-rrdbnet", "inference", inference["rrdbnet"], 120, 40),
        perf_step("perf-train-rrdbnet", "train", train_perf["rrdbnet"], 120, 40),
    ]
    assert all(re.fullmatch(r"[a-z0-9-]+", s.name) for s in steps)
    return Plan(dry_run, steps, collect_s=2.0 if dry_run else 10.0)


def hide_device_lacks(folder: Path) -> Path:
    """A `sitecustomize` in `folder` that makes DEVICE_LACKS unimportable in every process that has `folder` on
    its PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import importlib.abc\n"
        "import sys\n\n\n"
        "class _DeviceLacks(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] in {set(DEVICE_LACKS)!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (the GPU machine has none: dry run)')\n"
        "        return None\n\n\n"
        "sys.meta_path.insert(0, _DeviceLacks())\n"
    )
    return folder


def _ratios(rows: list[dict[str, Any]], key: str) -> str:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return f"{min(values):.1f}-{max(values):.1f}x" if values else "-"


def headline(record: dict[str, Any]) -> str:
    """A step's main figures in one line (empty when they are missing or incomplete)."""
    try:
        return _headline(record)
    except (KeyError, TypeError, ValueError):
        return ""


def _headline(record: dict[str, Any]) -> str:
    figures = record.get("figures") or {}
    rows, totals = figures.get("rows") or [], figures.get("totals") or {}
    name = record["name"]
    if name == "tests":
        return f"{figures.get('tests', '?')} tests, {figures.get('failures', '?')} failed, " \
               f"{figures.get('errors', '?')} errors, {figures.get('skipped', '?')} skipped"  # fmt: skip
    if name == "perf-metrics" and totals:
        seconds = f"sreval {totals['sreval_s']:.3f} s, reference {totals['reference_s']:.2f} s"
        return f"{totals['images']} images: {seconds}, {totals['ratio']:.1f}x"
    if name == "perf-perceptual":
        return f"per image: NIQE {_ratios(rows, 'niqe_ratio')}, NRQM {_ratios(rows, 'nrqm_ratio')}"
    if name.startswith("perf-inference"):
        return "; ".join(f"{r['model']} {r['ratio']:.2f}x, engine {r['engine_tflop_s']:.1f} TFLOP/s" for r in rows)
    if name.startswith("perf-train"):
        return "; ".join(f"{r['model']} {r['ratio']:.2f}x ({r['sreval_it_s']:.0f} vs {r['naive_it_s']:.0f} it/s)"
                         for r in rows)  # fmt: skip
    if name == "training" and figures.get("run"):
        run = figures["run"]
        last = {v["dataset"]: float(v["psnr"]) for v in figures.get("validation", [])}
        return f"{run['steps']} steps in {run['wall_s']} s; PSNR " + ", ".join(f"{k} {v:.3f}" for k, v in last.items())
    if name == "benchmarks" and figures.get("summary"):
        psnr = [r for r in figures["summary"] if r["metric"] == "psnr"]
        return "PSNR " + ", ".join(f"{r['dataset']} {float(r['mean']):.3f}" for r in psnr)
    return ""

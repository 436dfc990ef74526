"""The GPU run: everything sreval must prove on a CUDA device, in one command that fits a short lease.

Run it through `perf/gpu_run.sh` (which only picks the Python) after `perf/gpu_stage.py` has staged the data and
packages into `.gpu/`. Steps, in order, each a subprocess with a time box:

1. `tests`: `pytest -m gpu` (the CUDA-vs-CPU equality tests) on the test files that hold such tests.
2. `perf-metrics`, `perf-perceptual`, `perf-inference-srresnet`, `perf-train-srresnet`: the performance scripts
   on the device, each writing its figures as JSON.
3. `training`: `sreval train srresnet-mse` on T91 with `perf/gpu_srresnet_mse.yaml`, for as many steps as the
   time box holds at the rate `perf-train-srresnet` measured with the same batch, crop and settings.
4. `benchmarks`: the finished run becomes zoo entry `srresnet-mse` in a scratch zoo, and `sreval run-benchmarks`
   scores it on the staged sets (Set5, Set14, BSD100; Urban100 does not fit into a device call).
5. `perf-inference-rrdbnet`, `perf-train-rrdbnet`: RRDBNet's figures, in the time left. They come last because
   compiling RRDBNet takes the least predictable time, and the trained model must not wait for it.

A step gets at most its own box and never the time that later steps are guaranteed; a step that would get less
than its minimum is skipped. Time boxes end a step with SIGTERM (training then writes a checkpoint), then SIGKILL.

Everything lands in `--out` (on the device machine, `$OUT`), rewritten after every step so that a run cut short
still leaves what it did: `summary.json` (machine, steps with status and time, every figure), `log.txt` (all
output), and from the training and benchmark steps `model.safetensors`, `config.yaml` and `card.md` (the zoo
entry), `train_log.csv`, `validation.csv` and `per_image.csv`: at most 8 files, none over 16 MiB.

`--dry-run` runs every step at toy size on the CPU (seconds each, under 2 minutes in all) on the same staged
folder, so that the real run cannot fail on a typo, a missing file or a missing package. Its model is a toy.

    perf/gpu_run.sh [--dry-run] [--stage .gpu] [--out DIR] [--budget SECONDS] [--only STEP,STEP]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import IO, Any

from gpu_steps import MayFail, Plan, Step, headline, hide_device_lacks, plan_steps

REPO = Path(__file__).resolve().parent.parent
OUT_FILES = 8
OUT_FILE_BYTES = 16 << 20
#: Seconds between SIGTERM and SIGKILL when a step's box ends (training checkpoints in that time).
GRACE_S = 20.0


class Run:
    """The step runner: time, log, summary."""

    def __init__(
        self, plan: Plan, out: Path, work: Path, budget: float, env: dict[str, str], grace: float = GRACE_S
    ) -> None:
        self.plan = plan
        self.grace = grace
        self.out = out
        self.work = work
        self.start = time.monotonic()
        self.deadline = self.start + budget
        self.env = env
        self.log = (out / "log.txt").open("a", encoding="utf-8", errors="replace")
        self.lock = threading.Lock()
        self.summary: dict[str, Any] = {"dry_run": plan.dry_run, "budget_s": budget, "steps": []}

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.start:6.1f} s] {text}"
        with self.lock:
            print(line, flush=True)
            self.log.write(line + "\n")
            self.log.flush()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def write_summary(self) -> None:
        tmp = self.out / "summary.json.tmp"
        tmp.write_text(json.dumps(self.summary, indent=1, default=str) + "\n")
        os.replace(tmp, self.out / "summary.json")

    def run_step(self, step: Step, reserved_after: float) -> dict[str, Any]:
        box = min(step.box, self.left() - reserved_after)
        record: dict[str, Any] = {"name": step.name, "box_s": round(box, 1)}
        if box < step.minimum:
            record["status"] = "skipped: not enough time left"
            self.say(f"== {step.name}: skipped ({box:.0f} s left for it, needs {step.minimum:.0f} s)")
            return record
        self.say(f"== {step.name}: up to {box:.0f} s")
        started = time.monotonic()
        status = "ok"
        try:
            for command in step.commands(self, box):
                remaining = box - (time.monotonic() - started)
                if isinstance(command, MayFail):
                    remaining = min(remaining, command.share * box)
                self.say("$ " + " ".join(command))
                rc = self._run(command, remaining)
                if rc != 0 and isinstance(command, MayFail):
                    self.say(f"(exit {rc}; the step goes on without it)")
                elif rc != 0:
                    status = "timed out" if rc is None else f"failed (exit {rc})"
                    break
        except Exception as error:  # a fault in planning a command must cost this step, not the run
            status = f"failed (planning it: {error!r})"
        record["status"] = status
        record["seconds"] = round(time.monotonic() - started, 1)
        self.say(f"== {step.name}: {status} after {record['seconds']} s")
        return record

    def _run(self, command: list[str], box: float) -> int | None:
        """The command's exit code, or None when its box ended it (SIGTERM, then SIGKILL after the grace time)."""
        process = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        assert process.stdout is not None
        pump = threading.Thread(target=self._pump, args=(process.stdout,), daemon=True)
        pump.start()
        try:
            rc: int | None = process.wait(timeout=max(box, 0.0))
        except subprocess.TimeoutExpired:
            rc = None
            self.say(f"time box over: SIGTERM to {command[0]} and its children")
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                self.say("still running: SIGKILL")
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        _signal_group(process.pid, signal.SIGKILL)  # workers it left behind
        pump.join(timeout=5)
        return rc

    def _pump(self, stream: IO[bytes]) -> None:
        """The step's output, as it comes, to this process's output and the log."""
        for raw in iter(stream.readline, b""):
            text = raw.decode("utf-8", errors="replace")
            with self.lock:
                sys.stdout.write(text)
                sys.stdout.flush()
                self.log.write(text)
                self.log.flush()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group has ended
        os.killpg(pid, sig)


def machine() -> dict[str, Any]:
    """What ran: Python, torch, the device, and nvidia-smi's view of the GPU when there is one."""
    import torch

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpus": os.cpu_count(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {
            "gpu": props.name,
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "capability": f"{props.major}.{props.minor}",
        }
        smi = shutil.which("nvidia-smi")
        if smi:
            query = "name,driver_version,clocks.sm,clocks.max.sm,power.limit,temperature.gpu"
            result = subprocess.run([smi, f"--query-gpu={query}", "--format=csv"], capture_output=True, text=True)
            info["nvidia_smi"] = result.stdout.strip()
    return info


def install_packages(stage: Path, work: Path) -> list[str]:
    """The staged packages that this Python lacks, importable from the returned path entries.

    A wheel is unpacked as it is (a wheel is a zip of the files site-packages gets): no pip is needed, and
    gpu_stage.py checked that the wheel is one this Python can import."""
    import importlib.util

    manifest = json.loads((stage / "STAGED.json").read_text())
    paths = []
    site = stage / "packages" / "site"
    if site.is_dir():
        paths.append(str(site.resolve()))
    target = work / "site"
    for module, staged in manifest.get("packages", {}).items():
        if staged.endswith(".whl") and importlib.util.find_spec(module) is None:
            with zipfile.ZipFile(stage / "packages" / staged) as wheel:
                wheel.extractall(target)
            if str(target) not in paths:
                paths.append(str(target))
    return paths


def collect(run: Run) -> None:
    """The step outputs into `out`, within its file limits."""
    picks = run.plan.outputs(run.work)
    for name, source in picks.items():
        if source.is_file():
            shutil.copyfile(source, run.out / name)
    files = sorted(p for p in run.out.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
    run.summary["out_files"] = {p.name: p.stat().st_size for p in files}
    problems = [f"{p.name} is {p.stat().st_size} bytes" for p in files if p.stat().st_size > OUT_FILE_BYTES]
    if len(files) > OUT_FILES:
        problems.append(f"{len(files)} files, more than {OUT_FILES}")
    run.summary["out_problems"] = problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="every step at toy size on the CPU")
    parser.add_argument("--stage", type=Path, default=REPO / ".gpu", help="what perf/gpu_stage.py staged")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-run")), help="results")
    parser.add_argument("--budget", type=float, help="seconds for everything (default 540; dry run 110)")
    parser.add_argument("--only", help="comma-separated step names (default: all)")
    args = parser.parse_args()
    stage = args.stage.resolve()
    if not (stage / "STAGED.json").is_file():
        raise SystemExit(f"error: {stage} holds no STAGED.json: run perf/gpu_stage.py first")
    args.out.mkdir(parents=True, exist_ok=True)
    if any(args.out.iterdir()):
        raise SystemExit(f"error: {args.out} is not empty; give an empty --out folder")
    budget = args.budget or (110.0 if args.dry_run else 540.0)
    work = Path(tempfile.mkdtemp(prefix="sreval-gpu-run-"))
    env = dict(os.environ)
    paths = [str(REPO), *install_packages(stage, work)]
    if args.dry_run:
        paths.insert(0, str(hide_device_lacks(work / "device-lacks")))
    env |= {
        "PYTHONPATH": os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "PYTHONUNBUFFERED": "1",
        "SREVAL_DATA_ROOT": str(stage / "data" / "benchmarks"),
        "SREVAL_TRAINING_ROOT": str(stage / "data" / "training"),
        "SREVAL_DB": f"sqlite:///{work / 'results.db'}",
        "SREVAL_CACHE": str(work / "cache"),
        "SREVAL_ZOO": str(work / "zoo"),
        "XDG_DATA_HOME": str(work / "xdg-data"),
        "XDG_CACHE_HOME": str(work / "xdg-cache"),
        "XDG_CONFIG_HOME": str(work / "xdg-config"),
        "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor"),  # training reuses what perf-train-srresnet compiled
    }
    plan = plan_steps(args.dry_run, stage, work)
    only = set(args.only.split(",")) if args.only else None
    unknown = (only or set()) - {s.name for s in plan.steps}
    if unknown:
        raise SystemExit(f"error: unknown step(s) {', '.join(sorted(unknown))}; steps: "
                         f"{', '.join(s.name for s in plan.steps)}")  # fmt: skip
    run = Run(plan, args.out, work, budget, env)
    run.summary["machine"] = machine()
    run.say(f"{'DRY RUN (toy sizes, CPU) ' if args.dry_run else ''}budget {budget:.0f} s, work folder {work}")
    run.say(f"machine: {run.summary['machine']}")
    steps = [s for s in plan.steps if only is None or s.name in only]
    for k, step in enumerate(steps):
        reserved = sum(later.guaranteed for later in steps[k + 1 :]) + plan.collect_s
        record = run.run_step(step, reserved)
        try:
            record |= step.figures(run)
        except Exception as error:  # e.g. a file its box cut off mid-write: keep going, say so
            record["figures_error"] = repr(error)
        run.summary["steps"].append(record)
        collect(run)
        run.write_summary()
    run.say(f"done in {time.monotonic() - run.start:.0f} s; results in {args.out}")
    for record in run.summary["steps"]:  # the end of the output is what a device call shows: the figures too
        print(f"  {record['name']:<26}{record['status']:<32}{record.get('seconds', ''):>7}  {headline(record)}")
    if run.summary["out_problems"]:
        print("output limits exceeded: " + "; ".join(run.summary["out_problems"]))
    run.log.close()
    failed = [r["name"] for r in run.summary["steps"] if r["status"] != "ok"]
    sys.exit(1 if failed or run.summary["out_problems"] else 0)


if __name__ == "__main__":
    main()

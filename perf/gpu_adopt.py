"""Makes the model that the GPU run (`perf/gpu_run.sh`) trained the built-in zoo entry `srresnet-mse`.

Give it the folder the run wrote (on the device `$OUT`, fetched here). It refuses, with one `error:` line:

- a dry run's folder (its model is a toy of a few steps on the CPU) or a run that trained on no CUDA device;
- a training that did not finish its schedule, or weights whose sha256 is not the one in the run's config.

Then it writes `models/srresnet-mse/` (`--models`): `model.safetensors` as trained, `config.yaml` (status trained,
the file's sha256, the entry's description) and the model card: how it was trained (data, recipe settings,
steps, wall time, device, from the run), the validation and the benchmark the GPU run made (Set5, Set14, BSD100),
and with `--benchmark` the benchmark on all four sets run here (`sreval run-benchmarks`; Urban100 cannot travel
to the GPU machine), which takes some minutes on a CPU.

    python perf/gpu_adopt.py RESULTS [--models models] [--benchmark] [--data-root ../shared/data/benchmarks]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
NAME = "srresnet-mse"
SETTINGS = "perf/gpu_srresnet_mse.yaml"
T91 = (
    "T91 (Yang et al. 2010: 91 small natural images of about 60,000 pixels each), the training set at hand: "
    "far smaller than the 350,000 ImageNet images of the paper, so this model is not the paper's SRResNet"
)


class AdoptError(Exception):
    pass


def read_results(results: Path) -> dict[str, Any]:
    """The run's summary, after checking that it holds a finished GPU training of real size."""
    path = results / "summary.json"
    if not path.is_file():
        raise AdoptError(f"{results} holds no summary.json: not a folder written by perf/gpu_run.py")
    summary: dict[str, Any] = json.loads(path.read_text())
    if summary.get("dry_run"):
        raise AdoptError(f"{results} is a dry run: its model is a toy trained for a few steps on the CPU")
    if not summary.get("machine", {}).get("gpu"):
        raise AdoptError(f"{results} names no GPU: the run did not train on a CUDA device")
    training = {s["name"]: s for s in summary.get("steps", [])}.get("training", {})
    if training.get("status") != "ok" or not (training.get("figures") or {}).get("run"):
        status = training.get("status", "missing")
        raise AdoptError(f"{results}: the training did not finish its schedule (status {status!r}): no final model")
    config = yaml.safe_load((results / "config.yaml").read_text())
    digest = hashlib.sha256((results / "model.safetensors").read_bytes()).hexdigest()
    if config["weights"].get("sha256") != digest:
        raise AdoptError(f"{results}/model.safetensors has sha256 {digest}, not the {config['weights']['sha256']} "
                         "its config.yaml names: the file is damaged or not this run's")  # fmt: skip
    summary["config"] = config
    return summary


def mean_table(rows: list[dict[str, str]], metrics: tuple[str, ...] = ("psnr", "ssim", "niqe")) -> list[str]:
    """Markdown rows `| set | PSNR | SSIM | NIQE | images |` from a benchmark's summary.csv rows."""
    by_set: dict[str, dict[str, str]] = {}
    for row in rows:
        by_set.setdefault(row["dataset"], {"n": row["n"]})[row["metric"]] = row["mean"]
    lines = ["| set | PSNR (dB) | SSIM | NIQE | images |", "|---|---|---|---|---|"]
    for dataset, values in by_set.items():
        cells = [f"{float(values[m]):.{4 if m == 'ssim' else 3}f}" if m in values else "—" for m in metrics]
        lines.append(f"| {dataset} | {' | '.join(cells)} | {values['n']} |")
    return lines


def benchmark_here(models: Path, data_root: str | None) -> list[dict[str, str]]:
    """`sreval run-benchmarks` of the adopted entry on all four sets, on this machine."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "sreval", "run-benchmarks", "--methods", NAME, "--metrics", "psnr,ssim,niqe",
                   "--out", tmp, "--db", f"sqlite:///{tmp}/results.db", "--cache-dir", f"{tmp}/cache"]  # fmt: skip
        if data_root:
            command += ["--data-root", data_root]
        # an entry written elsewhere than the built-in folder is found through the user's zoo
        env_zoo = {"SREVAL_ZOO": str(models)} if models.resolve() != (REPO / "models").resolve() else {}
        subprocess.run(command, check=True, env={**os.environ, **env_zoo})
        with (Path(tmp) / "summary.csv").open(newline="") as f:
            return list(csv.DictReader(f))


def card(summary: dict[str, Any], here: list[dict[str, str]] | None) -> tuple[str, str]:
    """The card's training and metrics sections."""
    from sreval.train.export import training_section

    steps = {s["name"]: s for s in summary["steps"]}
    training = steps["training"]["figures"]
    run = dict(training["run"], train_dir=T91)
    plan = training.get("plan") or {}
    machine = summary["machine"]
    training_text = "\n".join([
        training_section(run),
        "",
        f"Settings: `{SETTINGS}` over the recipe (its comments give the reasons): batch {run['recipe']['batch']}, "
        f"lr {run['recipe']['lr']} halved at steps {run['recipe']['milestones']}. The step count is what the time "
        f"box held at the measured {plan.get('rate_it_s', 0):.0f} it/s ({plan.get('rate_from', '?')}), on "
        f"{machine['gpu']} (torch {machine['torch']}), by `perf/gpu_run.sh`.",
    ])  # fmt: skip
    lines = ["Validation during training (Set5, Set14; Y channel, 4 px shaved, MATLAB bicubic LR):", ""]
    lines += ["| step | set | PSNR (dB) | SSIM |", "|---|---|---|---|"]
    lines += [f"| {v['step']} | {v['dataset']} | {float(v['psnr']):.3f} | {float(v['ssim']):.4f} |"
              for v in training.get("validation", [])]  # fmt: skip
    gpu_bench = (steps.get("benchmarks", {}).get("figures") or {}).get("summary")
    if gpu_bench:
        lines += ["", f"`sreval run-benchmarks` on the GPU ({machine['gpu']}, fp32):", "", *mean_table(gpu_bench)]
    if here:
        lines += ["", "`sreval run-benchmarks --methods srresnet-mse --metrics psnr,ssim,niqe` on the CPU, all four "
                  "sets:", "", *mean_table(here)]  # fmt: skip
    else:
        lines += ["", f"All four sets: `sreval run-benchmarks --methods {NAME} --metrics psnr,ssim,niqe --out DIR`."]
    return training_text, "\n".join(lines)


def adopt(results: Path, models: Path, benchmark: bool, data_root: str | None) -> Path:
    from sreval.zoo.card import model_card
    from sreval.zoo.entry import read_entry
    from sreval.zoo.load import build

    summary = read_results(results)
    target = models / NAME
    builtin = yaml.safe_load((REPO / "models" / NAME / "config.yaml").read_text())
    config = dict(summary["config"], description=builtin["description"])
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(results / "model.safetensors", target / "model.safetensors")
    (target / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    here = benchmark_here(models, data_root) if benchmark else None
    entry = read_entry(target)
    training, metrics = card(summary, here)
    n_params = sum(p.numel() for p in build(entry, device="meta").parameters())
    (target / "README.md").write_text(model_card(entry, n_params, training, metrics))
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="the folder perf/gpu_run.py wrote")
    parser.add_argument("--models", type=Path, default=REPO / "models", help="zoo root to write into")
    parser.add_argument("--benchmark", action="store_true", help="also run the four-set benchmark here")
    parser.add_argument("--data-root", help="benchmark data (default: $SREVAL_DATA_ROOT)")
    args = parser.parse_args()
    try:
        target = adopt(args.results, args.models, args.benchmark, args.data_root)
    except AdoptError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"wrote {target}: model.safetensors, config.yaml, README.md")


if __name__ == "__main__":
    main()

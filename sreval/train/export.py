"""`sreval zoo add RUN --name NAME`: a finished training run becomes a zoo entry whose card says how it was made.

The card's training and metrics sections come from the run's `run.yaml` (recipe, steps, wall time, device,
training data, the validation PSNR/SSIM sreval measured on the last step). Metrics on all four sets are added
by running `sreval run-benchmarks --methods NAME` and are not invented here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sreval import zoo
from sreval.archs import create_model
from sreval.archs.state_dicts import state_dict_mismatch
from sreval.errors import SrevalError
from sreval.train.checkpoints import FINAL


def _run_summary(run: Path) -> dict[str, Any]:
    if run.is_file():
        raise SrevalError(
            f"{run} is a file; sreval zoo add takes the run folder of `sreval train` (its --out), which holds "
            "run.yaml and final/generator.safetensors"
        )
    path = run / "run.yaml"
    if not path.is_file():
        raise SrevalError(f"{run} has no run.yaml: not a finished `sreval train` run (resume it to the end first)")
    try:
        summary = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SrevalError(f"{path} is damaged: it is not the YAML that `sreval train` writes ({error})") from None
    if not isinstance(summary, dict) or "recipe" not in summary:
        raise SrevalError(f"{path} is not a run summary written by `sreval train`")
    return summary


def training_section(summary: dict[str, Any]) -> str:
    """The card's training section: how `sreval train` made the weights (recipe, data, steps, wall time)."""
    recipe = summary["recipe"]
    lines = [
        f"Trained by `sreval train {recipe['name']}` (sreval {summary.get('sreval', '?')}, "
        f"torch {summary.get('torch', '?')}).",
        "",
        "| | |",
        "|---|---|",
        f"| recipe | `{recipe['name']}`: generator `{recipe['generator']}`, losses {recipe['losses']} |",
        f"| data | {summary['train_dir']} ({summary['train_images']} images used, {summary['skipped_images']} "
        "skipped), HR crops "
        f"{recipe['crop']} px, LR by MATLAB bicubic ({recipe['degradation']}) |",
        f"| steps | {summary['steps']} (batch {recipe['batch']}, lr {recipe['lr']}, "
        f"milestones {recipe['milestones']}) |",
        f"| wall time | {summary['wall_s']} s on {summary['device']} × {summary['world_size']} process(es) |",
    ]
    return "\n".join(lines)


def metrics_section(name: str, summary: dict[str, Any]) -> str:
    """The card's metrics section: the validation sreval ran on the last step, and how to run the benchmark."""
    lines = []
    validation = summary.get("validation") or []
    if validation:
        lines += [
            "Validation at the last step (Y channel, border of 4 px shaved, MATLAB LR):",
            "",
            "| set | PSNR | SSIM | images |",
            "|---|---|---|---|",
        ]
        lines += [f"| {v['dataset']} | {v['psnr']:.3f} | {v['ssim']:.4f} | {v['n']} |" for v in validation]
    else:
        lines.append("None recorded in the run (validation was off).")
    lines += ["", f"Full benchmark: `sreval run-benchmarks --methods {name} --metrics psnr,ssim,niqe --out DIR`."]
    return "\n".join(lines)


def add_run(run: str | Path, name: str, *, root: str | Path | None = None, overwrite: bool = False) -> zoo.ZooEntry:
    """Writes the run's final generator as zoo entry `name` (config + safetensors + card, the card written by
    `sreval.zoo.model_card` with this run's training and metrics sections)."""
    run = Path(run)
    summary = _run_summary(run)
    weights = run / FINAL / "generator.safetensors"
    if not weights.is_file():
        raise SrevalError(f"{weights} is missing; the run did not finish")
    if summary.get("vgg19") not in (None, "verified"):
        raise SrevalError(f"{run} was trained with unverified stand-in VGG19 weights (a test run): it is not a model")
    recipe = summary["recipe"]
    arch_args = {"scale": recipe["scale"], **recipe["generator_args"]}
    model = create_model(recipe["generator"], **arch_args)
    state = zoo.read_safetensors(weights)
    problems = state_dict_mismatch(model.state_dict(), state)
    if problems:
        raise SrevalError(f"{weights} does not fit {recipe['generator']}: {'; '.join(problems)}")
    model.load_state_dict(state)
    return zoo.save_model(
        model,
        name,
        recipe["generator"],
        arch_args,
        scale=recipe["scale"],
        recipe=recipe["name"],
        description=f"{recipe['generator']} trained with recipe {recipe['name']} for {summary['steps']} steps",
        training=training_section(summary),
        metrics=metrics_section(name, summary),
        metadata={"run": str(run.resolve())},
        root=root,
        overwrite=overwrite,
    )

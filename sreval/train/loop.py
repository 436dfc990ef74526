"""`sreval train`: one training loop for every recipe, readable top to bottom in `train`.

Per step: a global batch of HR crops (sampled from (seed, step), so a resumed or multi-process run sees the same
crops as an uninterrupted single-process one) → LR with sreval's MATLAB bicubic on the training device → one
generator update (the recipe's weighted loss terms, built from the table in `sreval.train.loss_terms`) → for GAN
recipes one discriminator update with the adversarial term's discriminator loss (ESRGAN's and BasicSR's order:
generator first).

Run folder `OUT/`:

- `checkpoints/step_NNNNNNNN/`: `generator.safetensors`, `discriminator.safetensors`, `optimizers.pt` (optimiser
  and scheduler states; read back with `weights_only=True`, so it cannot run code) and `state.json`, written
  into a temporary folder and renamed, so a checkpoint exists completely or not at all. The two newest are kept.
  Every `checkpoint_every` steps, at the end, and when SIGINT/SIGTERM arrives (at the next step boundary). A
  SIGKILL loses at most one interval: running the same command again resumes from the newest checkpoint, and
  `train_log.csv` drops rows past it, so the loss curve continues without a gap or a duplicate
  (`sreval.train.checkpoints`).
- `train_log.csv` (step, lr, every loss term, it/s), `validation.csv` (step, dataset, PSNR, SSIM: the benchmark
  path on the generator, `sreval.train.validation`), TensorBoard events when `tensorboard` is installed
  (`sreval.train.logs`).
- `final/generator.safetensors` + `run.yaml` (recipe, steps, wall time, device, data, validation) when the run
  has done all its steps: what `sreval zoo add` turns into a zoo entry.

Multi-process: under `torchrun --nproc_per_node=N` (env RANK/WORLD_SIZE) the generator runs in
DistributedDataParallel, each rank takes batch/N of every global batch, and discriminator gradients are averaged
by hand (DDP allows one forward per backward; the discriminator sees real and fake images separately, as in the
papers, so that its BatchNorm statistics are not mixed). Only rank 0 writes files. BatchNorm layers use each
rank's own statistics unless CUDA is used, where they are converted to SyncBatchNorm; on CPU a model with
BatchNorm therefore trains slightly differently with several processes (a warning says so). Which process runs
where: `sreval.train.devices`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import safetensors.torch
import torch
import torch.distributed as dist
import yaml
from torch import nn

from sreval import __version__
from sreval import progress as progress_lines
from sreval.archs import create_model
from sreval.errors import ParameterError, SrevalError
from sreval.fileutil import atomic_open
from sreval.provenance import describe_device
from sreval.train.batches import make_loader, make_lr, to_unit
from sreval.train.checkpoints import (
    FINAL,
    CheckpointReader,
    checkpoint_dirs,
    init_generator,
    load_into,
    save_checkpoint,
    state_dict,
)
from sreval.train.data import index_images
from sreval.train.devices import autocast, average_gradients, dist_from_env
from sreval.train.logs import CsvLog, tensorboard
from sreval.train.loss_terms import BuildContext, DiscriminatorView, Objective, StepView
from sreval.train.recipes import Recipe
from sreval.train.validation import validate

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    out: Path
    train_dir: Path
    device: torch.device
    data_root: Path | None = None  # benchmark data for validation; None with validate_every > 0 is an error
    vgg_weights: Path | None = None  # explicit VGG19 file (else resolved as the `vgg19` asset)
    allow_unverified_vgg: bool = False  # tests only: stand-in VGG weights whose checksum cannot match
    progress: bool = True
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps in this invocation


@dataclass
class TrainResult:
    step: int
    finished: bool  # all the recipe's steps are done
    final_dir: Path | None
    wall_s: float
    validation: list[dict[str, Any]] = field(default_factory=list)


class _StopFlag:
    """SIGINT/SIGTERM → finish the current step, checkpoint, exit (instead of dying mid-write)."""

    def __init__(self) -> None:
        self.raised: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave handlers alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.raised = signum

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(recipe: Recipe, options: TrainOptions) -> TrainResult:
    """Runs (or resumes) `recipe` into `options.out`; see the module docstring."""
    device = options.device
    ddp = dist_from_env(device.type)
    if recipe.batch % ddp.world:
        raise ParameterError("batch", f"batch {recipe.batch} is not divisible by the {ddp.world} processes")
    if recipe.validate_every and options.data_root is None:
        raise ParameterError(
            "data_root", "validation needs the benchmark data: give data_root, or set the recipe's validate_every=0"
        )
    if recipe.validate_every and options.data_root is not None:
        from sreval.datasets.registry import get_dataset, require_files

        # Fail now, not at the first validation hours into the run.
        require_files([get_dataset(key) for key in recipe.validation_sets], options.data_root)
    out = options.out
    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)

    # Networks, losses, optimisers: all from the recipe.
    torch.manual_seed(recipe.seed)  # same initial weights on every rank (DDP also broadcasts them)
    generator: nn.Module = create_model(recipe.generator, scale=recipe.scale, **recipe.generator_args).to(device)
    discriminator: nn.Module | None = None
    if recipe.gan_term:
        assert recipe.discriminator is not None
        d_args = {"input_size": recipe.crop, **recipe.discriminator_args}
        discriminator = create_model(recipe.discriminator, **d_args).to(device)
    objective = Objective(
        recipe.losses,
        BuildContext(device, options.vgg_weights, allow_unverified_vgg=options.allow_unverified_vgg),
    )
    opt_g = torch.optim.Adam(generator.parameters(), lr=recipe.lr, betas=recipe.betas)
    sched_g = torch.optim.lr_scheduler.MultiStepLR(opt_g, recipe.milestones, recipe.gamma)
    opt_d = sched_d = None
    if discriminator is not None:
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=recipe.d_lr or recipe.lr, betas=recipe.betas)
        sched_d = torch.optim.lr_scheduler.MultiStepLR(opt_d, recipe.milestones, recipe.gamma)

    # Resume from the newest checkpoint, else start from init_from.
    step, wall_before = 0, 0.0
    checkpoints = checkpoint_dirs(out)
    if checkpoints:
        latest = checkpoints[-1]
        reader = CheckpointReader(latest, checkpoints[-2] if len(checkpoints) > 1 else None)
        state = reader.state()
        if state["recipe"] != recipe.as_dict():
            changed = sorted(k for k in state["recipe"] if state["recipe"][k] != recipe.as_dict().get(k))
            raise ParameterError(
                "out",
                f"{out} holds a run of a different recipe (differs in: {', '.join(changed)}); "
                "use another run folder (out), or the same recipe settings to resume",
            )
        step, wall_before = int(state["step"]), float(state["wall_s"])
        load_into(generator, reader.tensors("generator.safetensors"), str(latest))
        if discriminator is not None:
            load_into(discriminator, reader.tensors("discriminator.safetensors"), str(latest))
        reader.load_optimizers({"opt_g": opt_g, "sched_g": sched_g, "opt_d": opt_d, "sched_d": sched_d})
        log.info("resuming %s at step %d", out, step)
    elif recipe.init_from:
        init_generator(generator, recipe.init_from)

    if ddp.world > 1:
        if device.type == "cuda":
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)  # type: ignore[no-untyped-call]
        elif any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in generator.modules()):
            log.warning(
                "BatchNorm on CPU with %d processes uses per-process statistics (SyncBatchNorm needs "
                "CUDA): results differ slightly from one process",
                ddp.world,
            )
        generator = nn.parallel.DistributedDataParallel(generator)
    if recipe.channels_last:
        generator = generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload, unused-ignore]
    g_forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(generator) if recipe.compile else generator
    generator.train()
    if discriminator is not None:
        discriminator.train()

    images = index_images(options.train_dir, recipe.crop)
    stop = recipe.steps if options.stop_after is None else min(recipe.steps, step + options.stop_after)
    loader = make_loader(
        images,
        batch=recipe.batch,
        seed=recipe.seed,
        start_step=step,
        stop_step=stop,
        rank=ddp.rank,
        world_size=ddp.world,
        workers=recipe.workers,
    )
    term_names = list(recipe.losses)
    train_log = val_log = None
    board = None
    if ddp.main:
        train_log = CsvLog(out / "train_log.csv", ["step", "lr", *term_names, "total", "d_loss", "it_s"], step)
        val_log = CsvLog(out / "validation.csv", ["step", "dataset", "psnr", "ssim", "n"], step)
        board = tensorboard(out)
    nets: dict[str, nn.Module] = {"generator": generator}
    if discriminator is not None:
        nets["discriminator"] = discriminator

    def optimizer_states() -> dict[str, Any]:
        states = {"opt_g": opt_g.state_dict(), "sched_g": sched_g.state_dict()}
        if opt_d is not None and sched_d is not None:
            states |= {"opt_d": opt_d.state_dict(), "sched_d": sched_d.state_dict()}
        return states

    started = time.perf_counter()

    def wall() -> float:
        return wall_before + time.perf_counter() - started

    validation: list[dict[str, Any]] = []
    bar = progress_lines.Progress(
        recipe.steps, recipe.name, "it", enabled=options.progress and ddp.main, initial=step,
        interval=progress_lines.LINE_INTERVAL_S,
    )  # fmt: skip
    window_start, window_steps = time.perf_counter(), 0
    with _StopFlag() as stop_flag:
        for hr_u8 in loader:
            hr_u8 = hr_u8.to(device, non_blocking=True)
            lr = to_unit(make_lr(hr_u8, recipe.scale, variant=recipe.degradation))
            hr = to_unit(hr_u8)
            if recipe.channels_last:
                lr, hr = (
                    lr.contiguous(memory_format=torch.channels_last),
                    hr.contiguous(memory_format=torch.channels_last),
                )

            # Generator update.
            with autocast(recipe.precision, device):
                sr = g_forward(lr)
            sr = sr.float()
            total, logged = objective(StepView(sr, hr, DiscriminatorView(discriminator, hr, sr, recipe.precision)))
            opt_g.zero_grad(set_to_none=True)
            total.backward()  # type: ignore[no-untyped-call]
            opt_g.step()
            sched_g.step()

            # Discriminator update (GAN recipes).
            d_loss = None
            d_fn = objective.discriminator_loss
            if discriminator is not None and opt_d is not None and sched_d is not None and d_fn is not None:
                with autocast(recipe.precision, device):
                    real = discriminator(hr).float()
                    fake = discriminator(sr.detach()).float()
                d_loss = d_fn(real, fake)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()  # type: ignore[no-untyped-call]
                average_gradients(discriminator, ddp.world)
                opt_d.step()
                sched_d.step()

            step += 1
            window_steps += 1
            bar.update()
            if not math.isfinite(float(logged["total"])):
                raise SrevalError(f"loss is {float(logged['total'])} at step {step}; lower lr or check the data")
            last = step == stop
            if ddp.main and train_log is not None and (last or (recipe.log_every and step % recipe.log_every == 0)):
                it_s = window_steps / max(time.perf_counter() - window_start, 1e-9)
                window_start, window_steps = time.perf_counter(), 0
                row = {
                    "step": step,
                    "lr": opt_g.param_groups[0]["lr"],
                    "it_s": f"{it_s:.3f}",
                    **{k: f"{float(v):.6g}" for k, v in logged.items()},
                }
                if d_loss is not None:
                    row["d_loss"] = f"{float(d_loss.detach()):.6g}"
                train_log.write(row)
                if board is not None:
                    for k, v in logged.items():
                        board.add_scalar(f"loss/{k}", float(v), step)
            if (
                ddp.main
                and val_log is not None
                and options.data_root is not None
                and recipe.validate_every
                and (step % recipe.validate_every == 0 or (last and step == recipe.steps))
            ):
                rows = validate(generator, recipe, options.data_root, device)
                for r in rows:
                    val_log.write({"step": step, **r})
                    if board is not None:
                        board.add_scalar(f"val/{r['dataset']}_psnr", r["psnr"], step)
                validation = rows
            if (
                stop_flag.raised is not None
                or last
                or (recipe.checkpoint_every and step % recipe.checkpoint_every == 0)
            ):
                if ddp.main:
                    save_checkpoint(out, step, recipe, nets, optimizer_states(), wall())
                if stop_flag.raised is not None:
                    log.warning(
                        "signal %d: checkpoint at step %d written; run the same command to resume",
                        stop_flag.raised,
                        step,
                    )
                    break
    bar.close()
    if board is not None:
        board.close()
    finished = step >= recipe.steps
    final_dir = None
    if finished and ddp.main:
        final_dir = out / FINAL
        final_dir.mkdir(exist_ok=True)
        safetensors.torch.save_file(state_dict(generator), str(final_dir / "generator.safetensors"))
        summary = {
            "recipe": recipe.as_dict(),
            "steps": step,
            "wall_s": round(wall(), 1),
            "device": describe_device(device),  # the GPU's name, for the model card
            "world_size": ddp.world,
            "train_dir": str(options.train_dir),
            "train_images": len(images),
            "skipped_images": images.skipped,
            "validation": validation,
            "sreval": __version__,
            "torch": str(torch.__version__),
            "vgg19": ("verified" if objective.vgg_verified else "UNVERIFIED stand-in") if objective.uses_vgg else None,
        }
        with atomic_open(out / "run.yaml") as f:
            yaml.safe_dump(summary, f, sort_keys=False)
    if ddp.world > 1:
        dist.barrier()
    return TrainResult(step, finished, final_dir, wall(), validation)

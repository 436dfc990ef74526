"""`sreval train`: one training loop for every recipe, readable top to bottom in `train`.

Per step: a global batch of HR crops (sampled from (seed, step), so a resumed or multi-process run sees the same
crops as an uninterrupted single-process one) → LR with sreval's MATLAB bicubic on the training device → one
generator update (the recipe's weighted loss terms) → for GAN recipes one discriminator update (ESRGAN's and
BasicSR's order: generator first).

Run folder `OUT/`:

- `checkpoints/step_NNNNNNNN/`: `generator.safetensors`, `discriminator.safetensors`, `optimizers.pt` (optimiser
  and scheduler states; read back with `weights_only=True`, so it cannot run code) and `state.json`, written
  into a temporary folder and renamed, so a checkpoint exists completely or not at all. The two newest are kept.
  Every `checkpoint_every` steps, at the end, and when SIGINT/SIGTERM arrives (at the next step boundary). A
  SIGKILL loses at most one interval: running the same command again resumes from the newest checkpoint, and
  `train_log.csv` drops rows past it, so the loss curve continues without a gap or a duplicate.
- `train_log.csv` (step, lr, every loss term, it/s), `validation.csv` (step, dataset, PSNR, SSIM on Y with the
  border shaved — sreval's own metrics on Set5/Set14 LR made by the protocol), TensorBoard events when
  `tensorboard` is installed.
- `final/generator.safetensors` + `run.yaml` (recipe, steps, wall time, device, data, validation) when the run
  has done all its steps: what `sreval zoo add` turns into a zoo entry.

Multi-process: under `torchrun --nproc_per_node=N` (env RANK/WORLD_SIZE) the generator runs in
DistributedDataParallel, each rank takes batch/N of every global batch, and discriminator gradients are averaged
by hand (DDP allows one forward per backward; the discriminator sees real and fake images separately, as in the
papers, so that its BatchNorm statistics are not mixed). Only rank 0 writes files. BatchNorm layers use each
rank's own statistics unless CUDA is used, where they are converted to SyncBatchNorm; on CPU a model with
BatchNorm therefore trains slightly differently with several processes (a warning says so).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

import safetensors.torch
import torch
import torch.distributed as dist
import yaml
from torch import nn
from tqdm import tqdm

from sreval import __version__, zoo
from sreval.archs import create_model
from sreval.errors import SrevalError
from sreval.fileutil import atomic_open
from sreval.matlab.imresize import Variant
from sreval.train import losses as L
from sreval.train.data import index_images, make_loader, make_lr, to_unit
from sreval.train.recipes import Recipe
from sreval.train.vgg import VGGFeatures

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
FINAL = "final"
KEEP_CHECKPOINTS = 2


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


# --- Distributed ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _dist_from_env(device_type: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _average_gradients(module: nn.Module, world: int) -> None:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


# --- Losses --------------------------------------------------------------------------------------------------


class DiscriminatorView:
    """The discriminator's logits on this step's real and generated images, computed once and only when a GAN
    term asks: real without gradient, fake with gradient to the generator (the discriminator stays fixed)."""

    def __init__(self, discriminator: nn.Module | None, hr: torch.Tensor, sr: torch.Tensor, recipe: Recipe) -> None:
        self.discriminator, self.hr, self.sr, self.recipe = discriminator, hr, sr, recipe
        self._logits: tuple[torch.Tensor, torch.Tensor] | None = None

    def logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._logits is None:
            if self.discriminator is None:
                raise SrevalError(f"recipe {self.recipe.name} weights a GAN term but has no discriminator")
            params = list(self.discriminator.parameters())
            for p in params:
                p.requires_grad_(False)
            try:
                with _autocast(self.recipe, self.sr.device):
                    real = self.discriminator(self.hr).float().detach()
                    fake = self.discriminator(self.sr).float()
            finally:
                for p in params:
                    p.requires_grad_(True)
            self._logits = (real, fake)
        return self._logits


class GeneratorObjective:
    """The recipe's loss terms (unweighted values by name); VGG-based terms load VGG19 (checksummed) once."""

    def __init__(self, recipe: Recipe, options: TrainOptions, device: torch.device) -> None:
        self.names = list(recipe.losses)
        vgg = {"allow_unverified": options.allow_unverified_vgg}
        self.modules: dict[str, nn.Module] = {}
        for term in self.names:
            if term == "mse":
                self.modules[term] = L.PixelLoss("mse")
            elif term == "l1":
                self.modules[term] = L.PixelLoss("l1")
            elif term == "tv":
                self.modules[term] = L.TotalVariationLoss()
            elif term == "vgg22":
                self.modules[term] = L.srgan_vgg_loss("vgg22", options.vgg_weights, **vgg)
            elif term == "vgg54":
                self.modules[term] = L.srgan_vgg_loss("vgg54", options.vgg_weights, **vgg)
            elif term == "vgg54_pre":
                self.modules[term] = L.esrgan_perceptual_loss(options.vgg_weights, **vgg)
            elif term in ("enet_perceptual", "texture") and term not in self.modules:
                perceptual, texture = L.enhancenet_losses(options.vgg_weights, **vgg)  # one shared VGG19
                self.modules["enet_perceptual"], self.modules["texture"] = perceptual, texture
            elif term not in ("gan", "ragan", "enet_perceptual", "texture"):
                raise SrevalError(f"no implementation for loss term {term!r}")  # recipes are checked; a bug
        for module in self.modules.values():
            module.to(device)
        vggs = [v for m in self.modules.values() if isinstance(v := getattr(m, "vgg", None), VGGFeatures)]
        #: False when a VGG-based term runs on stand-in weights (tests): such a run must never become a model.
        self.vgg_verified = all(v.weights_verified for v in vggs)
        self.uses_vgg = bool(vggs)

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor, d: DiscriminatorView) -> dict[str, torch.Tensor]:
        values: dict[str, torch.Tensor] = {}
        enet = self.modules.get("enet_perceptual"), self.modules.get("texture")
        both = {"enet_perceptual", "texture"} <= set(self.names)
        if both and isinstance(enet[0], L.PerceptualLoss) and isinstance(enet[1], L.TextureLoss):
            # EnhanceNet-PAT's two VGG terms share one VGG19: run it once per step, not once per term.
            features = L.vgg_feature_pair(enet[0].vgg, sr, hr)
            values["enet_perceptual"] = enet[0].from_features(*features)
            values["texture"] = enet[1].from_features(*features)
        for term in self.names:
            if term in values:
                continue
            if term == "tv":
                values[term] = self.modules[term](sr)
            elif term == "gan":
                values[term] = L.gan_generator_loss(d.logits()[1])
            elif term == "ragan":
                values[term] = L.ragan_generator_loss(*d.logits())
            else:
                values[term] = self.modules[term](sr, hr)
        return values


# --- Checkpoints ---------------------------------------------------------------------------------------------


def _state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    inner = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
    inner = getattr(inner, "_orig_mod", inner)  # torch.compile wrapper
    return {k: v.detach().to("cpu").contiguous() for k, v in inner.state_dict().items()}


def _load_into(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    inner = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
    inner = getattr(inner, "_orig_mod", inner)
    expected = inner.state_dict()
    problems = zoo.state_dict_mismatch(expected, state)
    if problems:
        raise SrevalError(f"{what} does not fit the recipe's network: {'; '.join(problems)}")
    inner.load_state_dict(state)


def checkpoint_dirs(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = out / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if (p / "state.json").is_file())


def _save_checkpoint(
    out: Path, step: int, recipe: Recipe, nets: dict[str, nn.Module], optimizers: dict[str, Any], wall_s: float
) -> Path:
    root = out / CHECKPOINTS
    final = root / f"step_{step:08d}"
    if final.exists():
        return final
    tmp = root / f".tmp_step_{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, net in nets.items():
        safetensors.torch.save_file(_state_dict(net), str(tmp / f"{name}.safetensors"))
    torch.save(optimizers, tmp / "optimizers.pt")
    state = {"step": step, "recipe": recipe.as_dict(), "wall_s": wall_s, "sreval": __version__}
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    os.replace(tmp, final)
    for old in checkpoint_dirs(out)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


class _CheckpointReader:
    """Reads one checkpoint folder back. Any file in it that cannot be read (truncated by a full disk, changed by
    hand, replaced by something else) is a `SrevalError` naming the file and saying how to go on: delete the
    folder to resume from the checkpoint before it, or start afresh. `optimizers.pt` is only ever read with
    `weights_only=True`, so a tampered file is refused rather than run."""

    def __init__(self, folder: Path, older: Path | None) -> None:
        self.folder, self.older = folder, older

    def damaged(self, name: str, reason: str) -> SrevalError:
        if self.older is not None:
            then = f"delete {self.folder} to resume from the older checkpoint {self.older.name}"
        else:
            then = f"delete {self.folder} to start this run again from step 0 (there is no older checkpoint)"
        return SrevalError(
            f"cannot resume: checkpoint file {self.folder / name} is damaged or unreadable: {reason}. To go on, "
            f"{then}, or start afresh with another --out"
        )

    def state(self) -> dict[str, Any]:
        try:
            state = json.loads((self.folder / "state.json").read_text(encoding="utf-8"))
            if not isinstance(state, dict) or not {"step", "recipe", "wall_s"} <= state.keys():
                raise ValueError("it lacks the step, recipe and wall_s that sreval writes")
            state["step"], state["wall_s"] = int(state["step"]), float(state["wall_s"])
        except OSError as error:
            raise self.damaged("state.json", str(error.strerror or error)) from None
        except (ValueError, TypeError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise self.damaged("state.json", f"not the JSON sreval writes: {error}") from None
        return state

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        try:
            return zoo.parse_safetensors((self.folder / name).read_bytes())
        except OSError as error:
            raise self.damaged(name, str(error.strerror or error)) from None
        except ValueError as error:
            raise self.damaged(name, str(error)) from None

    def load_optimizers(self, targets: dict[str, Any]) -> None:
        """Loads the saved states into the optimisers and schedulers of `targets` (None values are skipped)."""
        name = "optimizers.pt"
        wanted = [key for key, target in targets.items() if target is not None]
        try:
            # On the CPU: load_state_dict moves each state to its parameter's device. Any failure to read a
            # CPU-only file of tensors and plain containers means the file is damaged; torch's own message is
            # not passed on, since for a refused object it advises loading with weights_only=False.
            saved = torch.load(self.folder / name, map_location="cpu", weights_only=True)
        except Exception as error:  # torch.load raises many types for damaged archives (zip, pickle, storage)
            raise self.damaged(
                name, f"torch cannot read it as tensors and plain values ({type(error).__name__})"
            ) from None
        if not isinstance(saved, dict) or not set(wanted) <= saved.keys():
            raise self.damaged(name, f"it does not hold the states sreval writes ({', '.join(wanted)})")
        try:
            for key in wanted:
                targets[key].load_state_dict(saved[key])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as error:
            raise self.damaged(name, f"its {key} state does not fit this run's recipe ({error})") from None


# --- Logs ----------------------------------------------------------------------------------------------------


class CsvLog:
    """Append-only CSV; on resume, rows after the checkpoint's step are dropped (they will be redone)."""

    def __init__(self, path: Path, fields: list[str], resume_step: int) -> None:
        self.path = path
        self.fields = fields
        rows: list[dict[str, str]] = []
        if path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with atomic_open(path, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore").writerow(row)


def _tensorboard(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: CSV logs are always written
        return None
    return SummaryWriter(str(out / "tensorboard"))


# --- Validation ----------------------------------------------------------------------------------------------


def validate(generator: nn.Module, recipe: Recipe, data_root: Path, device: torch.device) -> list[dict[str, Any]]:
    """PSNR/SSIM (Y, shave = scale) of the generator on the recipe's validation sets, by sreval's protocol.

    An output that is not finite or far outside [0, 1] is a `SrevalError` naming the image (`check_output`)."""
    from sreval.datasets.registry import get_dataset, load_hr
    from sreval.imageio import to_tensor
    from sreval.inference import InferenceOptions, Upscaler
    from sreval.matlab.color import luma_pair
    from sreval.matlab.imresize import imresize
    from sreval.methods.network import check_output, quantise_im2uint8
    from sreval.metrics.functional import psnr, ssim

    inner = generator.module if isinstance(generator, nn.parallel.DistributedDataParallel) else generator
    was_training = inner.training
    upscaler = Upscaler(inner, recipe.scale, device, InferenceOptions(tile=128, overlap=16, batch=4))
    rows = []
    try:
        for key in recipe.validation_sets:
            dataset = get_dataset(key)
            values: list[tuple[float, float]] = []
            for entry in dataset.images:
                hr = to_tensor(load_hr(entry, data_root).pixels).to(device)
                lr = imresize(hr, 1 / recipe.scale, variant=cast(Variant, recipe.degradation))
                if lr.shape[1] == 1:
                    lr = lr.expand(-1, 3, -1, -1)
                y = upscaler(lr.float() / 255)
                # A NaN (e.g. from BatchNorm statistics that only evaluation mode uses) must stop the run, not
                # become a PSNR of clamped garbage in validation.csv.
                check_output(y, f"validation of {recipe.name} on {key}/{entry.name}")
                sr = quantise_im2uint8(y)
                a, b = luma_pair(sr, hr)
                values.append((float(psnr(a, b, shave=recipe.scale)), float(ssim(a, b, shave=recipe.scale))))
            rows.append(
                {
                    "dataset": key,
                    "psnr": sum(v[0] for v in values) / len(values),
                    "ssim": sum(v[1] for v in values) / len(values),
                    "n": len(values),
                }
            )
    finally:
        inner.train(was_training)
    return rows


# --- The loop ------------------------------------------------------------------------------------------------


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


def _autocast(recipe: Recipe, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if recipe.precision == "bf16" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _init_generator(generator: nn.Module, source: str) -> None:
    """Initial weights from a zoo model name or a run folder (its final/ or newest checkpoint)."""
    path = Path(source).expanduser()
    if path.is_dir():
        candidates = [path / FINAL / "generator.safetensors"] + [
            c / "generator.safetensors" for c in reversed(checkpoint_dirs(path))
        ]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise SrevalError(f"init_from {source}: no final/ or checkpoint generator in that run folder")
        _load_into(generator, zoo.read_safetensors(found), f"init_from {found}")
        return
    _load_into(generator, dict(zoo.load_state_dict(source)), f"init_from zoo model {source!r}")


def train(recipe: Recipe, options: TrainOptions) -> TrainResult:
    """Runs (or resumes) `recipe` into `options.out`; see the module docstring."""
    device = options.device
    ddp = _dist_from_env(device.type)
    if recipe.batch % ddp.world:
        raise SrevalError(f"batch {recipe.batch} is not divisible by the {ddp.world} processes")
    if recipe.validate_every and options.data_root is None:
        raise SrevalError(
            "validation needs the benchmark data: set --data-root / SREVAL_DATA_ROOT, or --set validate_every=0"
        )
    if recipe.validate_every and options.data_root is not None:
        from sreval.datasets.registry import parse_datasets, require_files

        # Fail now, not at the first validation hours into the run.
        require_files(parse_datasets(",".join(recipe.validation_sets)), options.data_root)
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
    objective = GeneratorObjective(recipe, options, device)
    weigh = L.LossTerms(recipe.losses)
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
        reader = _CheckpointReader(latest, checkpoints[-2] if len(checkpoints) > 1 else None)
        state = reader.state()
        if state["recipe"] != recipe.as_dict():
            changed = sorted(k for k in state["recipe"] if state["recipe"][k] != recipe.as_dict().get(k))
            raise SrevalError(
                f"{out} holds a run of a different recipe (differs in: {', '.join(changed)}); "
                "use another --out, or the same settings to resume"
            )
        step, wall_before = int(state["step"]), float(state["wall_s"])
        _load_into(generator, reader.tensors("generator.safetensors"), str(latest))
        if discriminator is not None:
            _load_into(discriminator, reader.tensors("discriminator.safetensors"), str(latest))
        reader.load_optimizers({"opt_g": opt_g, "sched_g": sched_g, "opt_d": opt_d, "sched_d": sched_d})
        log.info("resuming %s at step %d", out, step)
    elif recipe.init_from:
        _init_generator(generator, recipe.init_from)

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
        generator = generator.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
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
        board = _tensorboard(out)
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
    bar = tqdm(
        total=recipe.steps,
        initial=step,
        desc=recipe.name,
        unit="it",
        disable=not (options.progress and ddp.main),
        dynamic_ncols=True,
    )
    window_start, window_steps = time.perf_counter(), 0
    with _StopFlag() as stop_flag:
        for hr_u8 in loader:
            hr_u8 = hr_u8.to(device, non_blocking=True)
            lr = to_unit(make_lr(hr_u8, recipe.scale, variant=cast(Variant, recipe.degradation)))
            hr = to_unit(hr_u8)
            if recipe.channels_last:
                lr, hr = (
                    lr.contiguous(memory_format=torch.channels_last),
                    hr.contiguous(memory_format=torch.channels_last),
                )

            # Generator update.
            with _autocast(recipe, device):
                sr = g_forward(lr)
            sr = sr.float()
            values = objective(sr, hr, DiscriminatorView(discriminator, hr, sr, recipe))
            total, logged = weigh(values)
            opt_g.zero_grad(set_to_none=True)
            total.backward()  # type: ignore[no-untyped-call]
            opt_g.step()
            sched_g.step()

            # Discriminator update (GAN recipes).
            d_loss = None
            if discriminator is not None and opt_d is not None and sched_d is not None:
                with _autocast(recipe, device):
                    real = discriminator(hr).float()
                    fake = discriminator(sr.detach()).float()
                d_fn = L.ragan_discriminator_loss if recipe.gan_term == "ragan" else L.gan_discriminator_loss
                d_loss = d_fn(real, fake)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()  # type: ignore[no-untyped-call]
                _average_gradients(discriminator, ddp.world)
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
                bar.set_postfix({"loss": row["total"], "it/s": row["it_s"]}, refresh=False)
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
                    _save_checkpoint(out, step, recipe, nets, optimizer_states(), wall())
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
        safetensors.torch.save_file(_state_dict(generator), str(final_dir / "generator.safetensors"))
        summary = {
            "recipe": recipe.as_dict(),
            "steps": step,
            "wall_s": round(wall(), 1),
            "device": str(device),
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

"""Training speed: a naive fp32 PyTorch loop vs sreval's training loop (`sreval.train.loop.train`), in it/s.

For each model (full-size SRResNet and RRDBNet, trained with the pixel-loss recipes `srresnet-mse` and
`esrgan-psnr`) both loops run on the same device, with the same batch and crop, the same initial weights (both
seed torch with the recipe's seed before building the network) and the same batches: HR crops from sreval's
loader (`make_loader`, same seed, same workers), LR made from them with `make_lr` on the training device.

- naive: the loop a researcher writes first: `create_model(name)` with its default (full-size) arguments, fp32,
  NCHW, eager, Adam with the recipe's lr and betas, `nn.MSELoss()` / `nn.L1Loss()` (the recipe's loss), and per
  step `optimizer.zero_grad()`, `loss.backward()`, `optimizer.step()`, `loss.item()` (for logging).
- sreval: the real `train()` with the recipe overridden to the same batch, crop and number of steps
  (warm-up + timed), no validation and no intermediate checkpoints, and the recipe's speed settings: on CUDA bf16
  autocast + channels_last + torch.compile; on the CPU fp32 (train() autocasts on CUDA only) + channels_last,
  without compile by default.

Both run `--warmup` steps (allocator, lazy kernel set-up, cuDNN, compilation) and then `--steps` timed steps; a
step's time runs from the end of the previous step to the end of this one, so it includes fetching the batch.
Both loops wait for each step to finish (naive: `loss.item()`; train(): its per-step finiteness check of the
loss). The naive loop's steps are timed with the wall clock; sreval's come from its own `train_log.csv` (run
with `log_every` = 1, each row's it_s is 1 / that step's time; writing a row per step costs sreval well under a
millisecond a step), so the model building before train()'s loop and the final checkpoint after it are not
counted. The script prints it/s (timed steps / their total time) and samples/s of each, the sreval/naive ratio
measured in the same run, the ratio of median step times (less sensitive to other jobs on a shared machine),
and the loss of both at the last step (close on the CPU, where both compute in fp32 on the same data from the
same weights). Target: ≥ 3× on an H100.

The training images are a synthetic folder of smooth random images made in a temporary folder (so the script
runs anywhere), unless --train-dir names a folder or a training set under $SREVAL_TRAINING_ROOT (e.g. T91).

    python perf/train.py [--device cpu|cuda] [--models srresnet,rrdbnet] [--batch 16] [--crop 96] [--steps 50]
                          [--warmup 10] [--train-dir T91] [--compile/--no-compile] [--workers 2] [--threads N]
                          [--json PATH]

Defaults on CUDA: batch 16, crops 96 (SRResNet) and 128 (RRDBNet) as in the papers, 10 + 50 steps, compile on,
2 loader workers. On the CPU (to finish in a few minutes): batch 4, crops 48 (SRResNet) and 64 (RRDBNet), 2 + 6
steps, no compile, loader in the main process.

--json PATH also writes the figures to PATH as JSON (perf/timing.py's JsonFigures), rewritten after every model:
one row per model with the printed columns and the settings of sreval's loop for it.
"""

from __future__ import annotations

import argparse
import csv
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import JsonFigures, torch_device
from torch import nn

from sreval.archs import create_model
from sreval.errors import SrevalError
from sreval.train.batches import make_loader, make_lr, to_unit
from sreval.train.data import TrainingImages, index_images, resolve_train_dir
from sreval.train.devices import uses_bf16
from sreval.train.loop import TrainOptions, train
from sreval.train.recipes import Recipe, get_recipe, with_overrides

#: The recipe each model trains with: the papers' pixel-loss (PSNR-oriented) stage.
RECIPE_OF = {"srresnet": "srresnet-mse", "rrdbnet": "esrgan-psnr"}
#: Default HR crop per model: the papers' on CUDA, smaller on the CPU so that the script takes minutes.
CROP_CUDA = {"srresnet": 96, "rrdbnet": 128}
CROP_CPU = {"srresnet": 48, "rrdbnet": 64}
SYNTHETIC_IMAGES = 16


@dataclass
class Rate:
    step_s: list[float]  # duration of each timed step, batch fetch included
    last_loss: float

    @property
    def it_s(self) -> float:
        """Steps per second over the whole timed window."""
        return len(self.step_s) / sum(self.step_s)

    @property
    def median_it_s(self) -> float:
        """1 / median step time: less sensitive to other jobs' bursts on a shared machine."""
        return 1 / statistics.median(self.step_s)


def synthetic_images(folder: Path, side: int, count: int = SYNTHETIC_IMAGES, seed: int = 0) -> Path:
    """`count` smooth random RGB images (`side`×`side` PNG): upsampled coarse noise plus a little fine noise."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        coarse = rng.integers(0, 256, (side // 16, side // 16, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC), dtype=np.int16)
        noisy = smooth + rng.integers(-12, 13, smooth.shape, dtype=np.int16)
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / f"{k:03d}.png")
    return folder


def naive_loop(
    recipe: Recipe, images: TrainingImages, device: torch.device, warmup: int, steps: int, workers: int
) -> Rate:
    """The textbook loop on sreval's batches; the times of the `steps` steps after `warmup`."""
    (term,) = recipe.losses  # pixel-loss recipes only (RECIPE_OF)
    criterion: nn.Module = {"mse": nn.MSELoss(), "l1": nn.L1Loss()}[term]
    torch.manual_seed(recipe.seed)  # the same initial weights as train()
    model = create_model(recipe.generator, scale=recipe.scale, **recipe.generator_args).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=recipe.betas)
    loader = make_loader(images, batch=recipe.batch, seed=recipe.seed, stop_step=warmup + steps, workers=workers)
    losses: list[float] = []
    step_s: list[float] = []
    start = time.perf_counter()
    for step, hr_u8 in enumerate(loader, 1):
        hr_u8 = hr_u8.to(device)
        lr = to_unit(make_lr(hr_u8, recipe.scale, variant=recipe.degradation))
        hr = to_unit(hr_u8)
        sr = model(lr)
        loss = criterion(sr, hr)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())  # waits for the step on a GPU, as train() does (its loss finiteness check)
        end = time.perf_counter()
        if step > warmup:
            step_s.append(end - start)
        start = end
    assert len(step_s) == steps
    return Rate(step_s, losses[-1])


def sreval_loop(recipe: Recipe, train_dir: Path, device: torch.device, warmup: int, out: Path) -> Rate:
    """train() as `sreval train` runs it; step times from the it_s of its log rows after `warmup` (log_every 1)."""
    train(recipe, TrainOptions(out=out, train_dir=train_dir, device=device, progress=False))
    with (out / "train_log.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return Rate([1 / float(row["it_s"]) for row in rows if int(row["step"]) > warmup], float(rows[-1]["total"]))


def main() -> None:
    try:
        run()
    except SrevalError as e:  # a missing training folder, a bad setting: the message, not a traceback
        raise SystemExit(f"error: {e}") from None


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", default="srresnet,rrdbnet", help=f"comma-separated, of {', '.join(RECIPE_OF)}")
    parser.add_argument("--batch", type=int, help="batch size (default 16 on CUDA, 4 on the CPU)")
    parser.add_argument("--crop", type=int, help="HR crop for every model (default per model, see above)")
    parser.add_argument("--steps", type=int, help="timed steps (default 50 on CUDA, 6 on the CPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first, ≥ 1 (default 10 on CUDA, 2 on the CPU)")
    parser.add_argument("--train-dir", help="HR folder or training set name (default: synthetic images)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="sreval (default on with CUDA)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="sreval (default: recipe's)")
    parser.add_argument("--workers", type=int, help="loader processes, both loops (default 2 on CUDA, 0 on CPU)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON (after every model)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    device, _ = torch_device(args.device, args.threads)
    cuda = device.type == "cuda"
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in RECIPE_OF]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(RECIPE_OF)}")
    batch = args.batch or (16 if cuda else 4)
    steps = args.steps or (50 if cuda else 6)
    warmup = args.warmup or (10 if cuda else 2)
    workers = args.workers if args.workers is not None else (2 if cuda else 0)
    if min(batch, steps, warmup) < 1 or workers < 0:
        parser.error("--batch, --steps and --warmup must be ≥ 1, --workers ≥ 0")
    compile_ = args.compile if args.compile is not None else cuda
    crops = {m: args.crop or (CROP_CUDA if cuda else CROP_CPU)[m] for m in models}

    with tempfile.TemporaryDirectory(prefix="sreval-bench-train-") as tmp_name:
        tmp = Path(tmp_name)
        if args.train_dir:
            train_dir = resolve_train_dir(args.train_dir)
        else:
            train_dir = synthetic_images(tmp / "images", side=max(256, 2 * max(crops.values())))
        options: dict[str, object] = {
            "models": models,
            "batch": batch,
            "crops": crops,
            "warmup": warmup,
            "steps": steps,
            "workers": workers,
            "compile": compile_,
            "channels_last": args.channels_last,  # None: the recipe's
            "train_dir": str(train_dir) if args.train_dir else None,  # None: synthetic images
        }
        figures = JsonFigures(args.json, "train", device, options)
        figures.write()
        print(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""), end="")
        print(f", torch {torch.__version__}, threads {torch.get_num_threads()}, batch {batch}, ", end="")
        print(f"{warmup} warm-up + {steps} timed steps, loader workers {workers}")
        print(f"training images: {'synthetic, ' if not args.train_dir else ''}{train_dir}")
        print("naive: fp32, NCHW, eager, Adam, loss.item() every step")
        print(
            f"{'model':<10}{'recipe':<13}{'crop':>5}{'':>3}{'naive it/s':>11}{'samples/s':>10}"
            f"{'':>3}{'sreval it/s':>12}{'samples/s':>10}{'ratio':>8}{'median':>8}"
            f"{'':>3}{'last loss naive / sreval':>25}"
        )
        settings: list[str] = []
        for name in models:
            overrides = {
                "batch": batch,
                "crop": crops[name],
                "steps": warmup + steps,  # milestones stay where they are: lr is constant, as in the naive loop
                "log_every": 1,
                "checkpoint_every": 0,
                "validate_every": 0,
                "workers": workers,
                "compile": compile_,
            }
            if args.channels_last is not None:
                overrides["channels_last"] = args.channels_last
            recipe = with_overrides(get_recipe(RECIPE_OF[name]), overrides, "perf/train.py")
            images = index_images(train_dir, recipe.crop)
            naive = naive_loop(recipe, images, device, warmup, steps, workers)
            if cuda:
                torch.cuda.empty_cache()
            ours = sreval_loop(recipe, train_dir, device, warmup, tmp / f"run_{name}")
            if cuda:
                torch.cuda.empty_cache()
            bf16 = uses_bf16(recipe.precision, device)
            setting = (
                f"{'bf16 autocast' if bf16 else 'fp32'}, channels_last {recipe.channels_last}, "
                f"compile {recipe.compile}, degradation {recipe.degradation}, lr {recipe.lr:g}"
            )
            settings.append(f"{name}: {setting}")
            print(
                f"{name:<10}{recipe.name:<13}{recipe.crop:>5}{'':>3}{naive.it_s:>11.3f}{naive.it_s * batch:>10.2f}"
                f"{'':>3}{ours.it_s:>12.3f}{ours.it_s * batch:>10.2f}{ours.it_s / naive.it_s:>7.2f}x"
                f"{ours.median_it_s / naive.median_it_s:>7.2f}x"
                f"{'':>3}{f'{naive.last_loss:.5f} / {ours.last_loss:.5f}':>25}",
                flush=True,
            )
            figures.add_row(
                {
                    "model": name,
                    "recipe": recipe.name,
                    "batch": batch,
                    "crop": recipe.crop,
                    "naive_it_s": naive.it_s,
                    "naive_samples_s": naive.it_s * batch,
                    "sreval_it_s": ours.it_s,
                    "sreval_samples_s": ours.it_s * batch,
                    "ratio": ours.it_s / naive.it_s,
                    "median_ratio": ours.median_it_s / naive.median_it_s,
                    "naive_last_loss": naive.last_loss,
                    "sreval_last_loss": ours.last_loss,
                    "sreval_settings": setting,
                }
            )
        print("sreval loop (train()):", "; ".join(settings))
        figures.finish({"models": len(models)})


if __name__ == "__main__":
    main()

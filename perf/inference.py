"""SR inference speed: a naive fp32 whole-image forward vs sreval's tiled engine (`sreval.inference.Upscaler`).

For each model (full-size SRResNet and RRDBNet, random weights: speed does not depend on them) both run on the
same device and the same random LR image. The script prints output Mpx/s, effective TFLOP/s and the engine/naive
speed ratio, measured in the same run, and the largest difference between the two outputs.

FLOPs are those of one whole-image forward, counted analytically over the Conv2d layers
(2·Cin·Cout·k²·Hout·Wout / groups, output sizes from forward hooks); activations, PixelShuffle and interpolation
are left out, as they are negligible next to the convolutions. The engine is credited with the same FLOPs, so
its "effective" rate is charged for the context it recomputes around tiles.

    python perf/inference.py [--device cpu|cuda] [--size 128] [--repeats 3] [--models srresnet,rrdbnet]
                              [--precision fp32|bf16|fp16] [--compile/--no-compile] [--tile 192] [--batch 8]
                              [--json PATH]

Engine defaults: on CUDA bf16 + channels_last + torch.compile, on the CPU fp32 without either.

--json PATH also writes the figures to PATH as JSON (perf/timing.py's JsonFigures), rewritten after every model:
one row per model with the printed columns (seconds, Mpx/s, TFLOP/s, ratio, max |diff|) and the tile and batch
the engine ended with; the settings hold the LR size and the engine's InferenceOptions.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Callable

import torch
from timing import JsonFigures, best_times, torch_device
from torch import nn

from sreval.archs import create_model
from sreval.inference import InferenceOptions, Upscaler

SCALE = 4


def conv_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs (multiply + add = 2) of the Conv2d layers in one forward of `model` on `x`."""
    total = 0

    def count(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        per_pixel = 2 * module.in_channels * module.out_channels * kh * kw // module.groups
        total += per_pixel * output.shape[0] * output.shape[2] * output.shape[3]

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, help="LR side in pixels (default 256 on CUDA, 128 on the CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N timed runs (default 3)")
    parser.add_argument("--models", default="srresnet,rrdbnet", help="comma-separated model names")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="engine (default bf16 on CUDA)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="engine (default on with CUDA)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="engine (default on with CUDA)")
    parser.add_argument("--tile", type=int, default=192, help="engine LR tile; 0 = whole image (default 192)")
    parser.add_argument("--overlap", type=int, default=16, help="engine LR context per side (default 16)")
    parser.add_argument("--batch", type=int, default=8, help="engine tiles per pass (default 8)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON (after every model)")
    args = parser.parse_args()
    device, sync = torch_device(args.device, args.threads)
    cuda = device.type == "cuda"
    size = args.size or (256 if cuda else 128)
    options = InferenceOptions(
        tile=args.tile or None,
        overlap=args.overlap,
        batch=args.batch,
        precision=args.precision or ("bf16" if cuda else "fp32"),
        channels_last=args.channels_last if args.channels_last is not None else cuda,
        compile=args.compile if args.compile is not None else cuda,
    )
    if cuda:
        torch.backends.cudnn.benchmark = True  # both sides get the fastest conv algorithms for their shapes
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    out_mpx = SCALE * SCALE * size * size / 1e6
    models = args.models.split(",")
    figures = JsonFigures(
        args.json,
        "inference",
        device,
        {
            "size": size,
            "scale": SCALE,
            "repeats": args.repeats,
            "models": models,
            "naive": "fp32 whole image, NCHW, eager",
            "options": dataclasses.asdict(options),
            "cudnn_benchmark": cuda,
        },
    )
    figures.write()

    print(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""), end="")
    print(f", torch {torch.__version__}, threads {torch.get_num_threads()}, LR {size}×{size} → ×{SCALE}")
    print(f"naive: fp32 whole image, NCHW, eager; engine: {options}")
    print(
        f"{'model':<10}{'GFLOP':>9}{'':>3}{'naive s':>9}{'Mpx/s':>8}{'TFLOP/s':>9}{'':>3}{'engine s':>9}{'Mpx/s':>8}"
        f"{'TFLOP/s':>9}{'ratio':>8}{'max|diff|':>11}"
    )
    for name in models:
        torch.manual_seed(0)
        naive_model = create_model(name).eval().to(device)
        engine = Upscaler(copy.deepcopy(naive_model), SCALE, device, options)
        flops = conv_flops(naive_model, x)

        def naive(model: nn.Module = naive_model) -> torch.Tensor:
            with torch.inference_mode():
                out: torch.Tensor = model(x)
            return out

        def tiled(engine: Upscaler = engine) -> torch.Tensor:
            return engine(x)

        for _ in range(2):  # warm-up: allocator, cuDNN autotuning, and compilation (static, then dynamic shapes)
            naive()
            tiled()
        both: list[Callable[[], torch.Tensor]] = [naive, tiled]
        (t_naive, t_engine), (y_naive, y_engine) = best_times(both, args.repeats, sync)
        diff = float((y_naive.float().clamp(0, 1) - y_engine.clamp(0, 1)).abs().max())

        def rates(seconds: float, flops: int = flops) -> str:
            return f"{'':>3}{seconds:>9.3f}{out_mpx / seconds:>8.2f}{flops / seconds / 1e12:>9.3f}"

        ratio = t_naive / t_engine
        print(f"{name:<10}{flops / 1e9:>9.1f}{rates(t_naive)}{rates(t_engine)}{ratio:>7.2f}x{diff:>11.1e}", flush=True)
        if engine.tile != options.tile or engine.batch != options.batch:
            print(f"  (engine fell back to tile {engine.tile}, batch {engine.batch} after running out of memory)")
        figures.add_row(
            {
                "model": name,
                "gflop": flops / 1e9,
                "naive_s": t_naive,
                "naive_mpx_s": out_mpx / t_naive,
                "naive_tflop_s": flops / t_naive / 1e12,
                "engine_s": t_engine,
                "engine_mpx_s": out_mpx / t_engine,
                "engine_tflop_s": flops / t_engine / 1e12,
                "ratio": ratio,
                "max_abs_diff": diff,
                "engine_tile": engine.tile,
                "engine_batch": engine.batch,
            }
        )
        del naive_model, engine, y_naive, y_engine
        if cuda:
            torch.cuda.empty_cache()
    figures.finish({"models": len(models)})


if __name__ == "__main__":
    main()

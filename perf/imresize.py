"""MATLAB imresize speed: the strided route against the gather formulation it replaced, on real HR images.

For each of Set5, Set14, BSD100 and Urban100, a few HR images of different sizes: the benchmark's two resizes,
×1/4 (the LR) and ×4 of that LR (the bicubic baseline), each timed with the previous formulation (a private copy
below) and with `sreval.matlab.imresize`, taking turns, best of `--repeat`. Prints ms and the ratio per image and
in total, and checks that the outputs are identical (exit status 1 if not). Target: >= 2x on both for Urban100.

    python perf/imresize.py [--data-root DIR] [--images 2] [--repeat 7] [--variant uint8] [--threads 1]

One torch thread by default, as in a benchmark worker. Timings on a shared machine are noisy: compare the ratio,
and read the load average printed with the figures.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
from collections.abc import Callable

import torch
from timing import best_times, torch_device

from sreval import settings
from sreval.datasets.registry import ImageEntry, load_hr, registry
from sreval.imageio import to_tensor
from sreval.matlab.imresize import VARIANTS, Variant, contributions, imresize

# --- the previous formulation: a gather and a new tensor per tap, six passes per rounding ----------------------


def previous_round(x: torch.Tensor) -> torch.Tensor:
    floor = torch.floor(x)
    return torch.where(x - floor >= 0.5, floor + 1, floor)


def previous_resize_dim(x: torch.Tensor, dim: int, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    rows = x.movedim(dim, -2).contiguous()
    weights = weights.to(x.device)
    indices = indices.to(x.device)
    out = rows.index_select(-2, indices[:, 0]) * weights[:, 0, None]
    for k in range(1, weights.shape[1]):
        out.add_(rows.index_select(-2, indices[:, k]) * weights[:, k, None])
    return out.movedim(-2, dim)


def previous_passes(
    x: torch.Tensor, scale: float, after_each: Callable[[torch.Tensor], torch.Tensor] | None
) -> torch.Tensor:
    in_h, in_w = x.shape[-2:]
    out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
    for dim, in_len, out_len in ((2, in_h, out_h), (3, in_w, out_w)):  # equal scales: height first
        weights, indices = contributions(in_len, out_len, scale)
        x = previous_resize_dim(x, dim, weights, indices)
        if after_each is not None:
            x = after_each(x)
    return x


def previous_imresize(img: torch.Tensor, scale: float, variant: Variant) -> torch.Tensor:
    if variant == "uint8":
        x = previous_passes(img.to(torch.float64), scale, lambda y: previous_round(y).clamp_(0, 255))
    else:
        x = previous_passes(img.to(torch.float64) / 255, scale, None)
        x = previous_round(x * 255).clamp_(0, 255)
    return x.to(torch.uint8)


# --- measurement ------------------------------------------------------------------------------------------------


def size_classes(entries: tuple[ImageEntry, ...], count: int) -> list[ImageEntry]:
    """One image from each of the `count` most common sizes of a set (ties: larger first)."""
    by_size: dict[tuple[int, int], list[ImageEntry]] = {}
    for entry in entries:
        by_size.setdefault((entry.height, entry.width), []).append(entry)
    ranked = sorted(by_size.items(), key=lambda item: (-len(item[1]), -item[0][0] * item[0][1], item[0]))
    return [images[0] for _, images in ranked[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root")
    parser.add_argument("--images", type=int, default=2, help="sizes (one image each) per set (default 2)")
    parser.add_argument("--repeat", type=int, default=7, help="best of N timings (default 7)")
    parser.add_argument("--variant", choices=VARIANTS, default="uint8")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    device, sync = torch_device(args.device, args.threads)
    root = settings.data_root(args.data_root)
    variant: Variant = args.variant

    print(f"{'image':<28}{'HR':>10}  {'x1/4 old':>8}{'new ms':>8}{'ratio':>7}  {'x4 old':>8}{'new ms':>8}{'ratio':>7}")
    totals = {"down": [0.0, 0.0], "up": [0.0, 0.0]}
    urban = {"down": [0.0, 0.0], "up": [0.0, 0.0]}
    identical = True
    for key, dataset in registry().items():
        for entry in size_classes(dataset.images, args.images):
            hr = to_tensor(load_hr(entry, root).pixels).to(device)
            lr = imresize(hr, 0.25, variant=variant)  # also the warm-up (plans, first-call allocations)
            row = f"{key + '/' + entry.name:<28}{f'{hr.shape[-2]}x{hr.shape[-1]}':>10}"
            for direction, img, scale in (("down", hr, 0.25), ("up", lr, 4.0)):
                (old_s, new_s), (old_out, new_out) = best_times(
                    [
                        functools.partial(previous_imresize, img, scale, variant),
                        functools.partial(imresize, img, scale, variant=variant),
                    ],
                    args.repeat,
                    sync,
                )
                identical = identical and torch.equal(old_out, new_out)
                for sums in (totals, urban) if key == "urban100" else (totals,):
                    sums[direction][0] += old_s
                    sums[direction][1] += new_s
                row += f"  {old_s * 1e3:>8.1f}{new_s * 1e3:>8.1f}{old_s / new_s:>6.1f}x"
            print(row, flush=True)
    for label, sums in (("all", totals), ("urban100", urban)):
        down, up = sums["down"], sums["up"]
        print(
            f"{label:<38}  {down[0] * 1e3:>8.1f}{down[1] * 1e3:>8.1f}{down[0] / down[1]:>6.1f}x"
            f"  {up[0] * 1e3:>8.1f}{up[1] * 1e3:>8.1f}{up[0] / up[1]:>6.1f}x"
        )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"variant {variant}, device {device}, torch threads {torch.get_num_threads()}, load average {load}")
    print("outputs identical" if identical else "OUTPUTS DIFFER")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

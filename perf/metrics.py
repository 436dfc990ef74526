"""PSNR + SSIM speed: sreval (torch, float64) vs a straightforward float64 numpy/scipy port of the MATLAB code.

Both score the same bicubic ×4 outputs of all four sets against their HR images with the published protocol
(MATLAB uint8 Y, gray images on their own values, shave 4, SSIM 11×11 Gaussian σ = 1.5, valid filtering).
The script first checks that the two agree (|ΔPSNR| ≤ 1e-6 dB, |ΔSSIM| ≤ 1e-9), then prints the time of each and
the speed ratio, per set and overall. Target: ≥ 5× on CPU.

    python perf/metrics.py [--data-root DIR] [--device cpu|cuda] [--repeat 3] [--threads N]

Image decoding and the bicubic outputs are prepared once, outside the timed part.
"""

from __future__ import annotations

import argparse
import functools
import math

import numpy as np
import scipy.signal
import torch
from timing import best_of, torch_device

from sreval import settings
from sreval.benchmark.evaluate import make_lr
from sreval.datasets.registry import load_hr, registry
from sreval.imageio import from_tensor, to_tensor
from sreval.matlab.imresize import imresize
from sreval.metrics import create_metric, score_all
from sreval.protocol import Protocol

Pair = tuple[np.ndarray, np.ndarray]  # (SR, HR), uint8 (H, W, C)


def reference_y(img: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr of a uint8 image, Y only, rounded; a 1-channel image is used as it is."""
    if img.shape[2] == 1:
        return np.asarray(img[..., 0], dtype=np.float64)
    x = img.astype(np.float64)
    y = 16 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255
    return np.asarray(np.floor(y + 0.5))


def reference_scores(sr: np.ndarray, hr: np.ndarray, shave: int = 4) -> tuple[float, float]:
    """PSNR and SSIM as MATLAB's ssim_index.m computes them, with scipy's 2-D correlate for filter2."""
    a = reference_y(sr)[shave:-shave, shave:-shave]
    b = reference_y(hr)[shave:-shave, shave:-shave]
    psnr = 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def filt(x: np.ndarray) -> np.ndarray:
        return np.asarray(scipy.signal.correlate2d(x, window, mode="valid"))

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return psnr, float(ssim_map.mean())


def prepare(data_root: str | None) -> dict[str, list[Pair]]:
    root = settings.data_root(data_root)
    pairs: dict[str, list[Pair]] = {}
    for key, dataset in registry().items():
        pairs[key] = []
        for entry in dataset.images:
            hr = load_hr(entry, root).pixels
            sr = from_tensor(imresize(make_lr(to_tensor(hr), Protocol()), 4.0))  # the bicubic method's output
            pairs[key].append((sr, hr))
    return pairs


Scores = list[tuple[float, float]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings (default 3)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice); 1 = like numpy")
    args = parser.parse_args()
    device, sync = torch_device(args.device, args.threads)
    metrics = [create_metric("psnr", Protocol()), create_metric("ssim", Protocol())]

    print("preparing bicubic outputs ...", flush=True)
    pairs = prepare(args.data_root)

    def ours(items: list[Pair]) -> list[tuple[float, float]]:
        scores = []
        for sr, hr in items:
            a, b = to_tensor(sr).to(device), to_tensor(hr).to(device)
            scores.append(score_all(metrics, a, b))  # the library's own path: Y computed once per pair
        return [(float(s["psnr"][0]), float(s["ssim"][0])) for s in scores]  # one sync at the end on a GPU

    def reference(items: list[Pair]) -> list[tuple[float, float]]:
        return [reference_scores(sr, hr) for sr, hr in items]

    ours(pairs["set5"])  # warm-up (first-call allocations, CUDA context)
    print(f"{'set':<9}{'images':>7}{'sreval s':>10}{'numpy s':>10}{'ratio':>8}{'max|dPSNR|':>12}{'max|dSSIM|':>12}")
    total_ours = total_ref = 0.0
    worst_psnr = worst_ssim = 0.0
    for key, items in pairs.items():
        t_ours, s_ours = best_of(functools.partial(ours, items), args.repeat, sync)
        t_ref, s_ref = best_of(functools.partial(reference, items), 1 if args.repeat == 1 else 2, lambda: None)
        d_psnr = max(abs(a[0] - b[0]) for a, b in zip(s_ours, s_ref, strict=True))
        d_ssim = max(abs(a[1] - b[1]) for a, b in zip(s_ours, s_ref, strict=True))
        worst_psnr, worst_ssim = max(worst_psnr, d_psnr), max(worst_ssim, d_ssim)
        total_ours += t_ours
        total_ref += t_ref
        ratio = t_ref / t_ours
        print(f"{key:<9}{len(items):>7}{t_ours:>10.3f}{t_ref:>10.3f}{ratio:>7.1f}x{d_psnr:>12.1e}{d_ssim:>12.1e}")
    print(f"{'all':<9}{sum(map(len, pairs.values())):>7}{total_ours:>10.3f}{total_ref:>10.3f}"
          f"{total_ref / total_ours:>7.1f}x{worst_psnr:>12.1e}{worst_ssim:>12.1e}")
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, reference: numpy/scipy (single thread)")
    agree = worst_psnr <= 1e-6 and worst_ssim <= 1e-9
    print("values agree (|dPSNR| <= 1e-6 dB, |dSSIM| <= 1e-9)" if agree else "VALUES DISAGREE")
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

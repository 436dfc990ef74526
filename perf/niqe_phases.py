"""Where NIQE's time goes, phase by phase, on one calibration image (504x376) and one Urban100 image, and the
floor: the Gaussian filtering (x and x², 7-tap separable, float64, both scales) and the per-block sums alone.

    PYTHONPATH=. python perf/niqe_phases.py [--data-root ../shared/data] [--repeats 20]

Times are the best of `repeats` runs in CPU time of this process, torch and numpy on one thread (`--wall` for
wall time). On a shared machine compare rows of one run, and check `uptime`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import torch

import sreval.metrics.niqe as niqe_module
from sreval.imageio import load_image, to_tensor
from sreval.metrics.niqe import NiqeModel, _batch_features, _uint8_valued, niqe, shipped_niqe_model
from sreval.metrics.niqe_blocks import block_features
from sreval.metrics.niqe_kernels import imresize_half, mscn_float, mscn_integer
from sreval.metrics.perceptual import pirm_plane
from sreval.protocol import Protocol

CLOCK = time.process_time  # CPU time of this process (one thread): steadier than wall time on a busy machine


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
    return min(times) * 1e3


def gaussian(x: np.ndarray) -> np.ndarray:
    """7-tap separable Gaussian, 'nearest' border, float64: symmetric taps, 10 passes per direction."""
    g = np.exp(-(np.arange(4) ** 2) / (2 * (7 / 6) ** 2))
    g /= g[0] + 2 * g[1:].sum()
    for axis in (0, 1):
        p = np.pad(x, [(3, 3) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        n = x.shape[axis]

        def tap(d: int, p: np.ndarray = p, n: int = n, axis: int = axis) -> np.ndarray:
            return p[3 + d : 3 + d + n] if axis == 0 else p[:, 3 + d : 3 + d + n]

        x = tap(0) * g[0]
        for d in (1, 2, 3):
            x += (tap(-d) + tap(d)) * g[d]
    return x


def floor(x: np.ndarray, block: int) -> None:
    for scale, plane in ((1, x), (2, x[::2, ::2])):
        b = block // scale
        mu, second = gaussian(plane), gaussian(plane * plane)
        v = (plane - mu) / (np.sqrt(np.abs(second - mu * mu)) + 1)
        blocks = v.reshape(plane.shape[0] // b, b, plane.shape[1] // b, b).transpose(0, 2, 1, 3).reshape(-1, b * b)
        for _ in range(5):  # the coefficients and 4 products: one sum of squares and one of magnitudes each
            np.einsum("ij,ij->i", blocks, blocks)
            np.abs(blocks).sum(-1)


def report(path: Path, model: NiqeModel, block: int, repeats: int) -> None:
    plane = pirm_plane(to_tensor(load_image(path).pixels), Protocol())
    h, w = plane.shape[-2:]
    x = plane[0, 0, : h // block * block, : w // block * block].numpy().copy()
    half = imresize_half(x)
    s1, s2 = mscn_integer(x), mscn_float(half)
    feats = _batch_features(plane, block)
    phases = {
        "checks (integer plane?, finite)": lambda: (_uint8_valued(x), _uint8_valued(half), np.isfinite(x).all()),
        "MSCN scale 1 (integer ring sums)": lambda: mscn_integer(x),
        "imresize 0.5": lambda: imresize_half(x),
        "MSCN scale 2 (mirror-pair deviations)": lambda: mscn_float(half),
        "block features scale 1 (products, AGGD)": lambda: block_features(s1, block),
        "block features scale 2": lambda: block_features(s2, block // 2),
    }
    times = {name: best(fn, repeats) for name, fn in phases.items()}
    with mock.patch.object(niqe_module, "_batch_features", lambda plane, block: feats):
        times["nanmean, nancov, pinv"] = best(lambda: niqe(plane, model), repeats)
    total = best(lambda: niqe(plane, model), repeats)
    print(f"{path.name} {w}x{h} ({feats.shape[1]} blocks)")
    for name, ms in times.items():
        print(f"  {name:<42}{ms:>8.2f} ms")
    print(f"  {'sum of phases':<42}{sum(times.values()):>8.2f} ms")
    print(f"  {'niqe() total':<42}{total:>8.2f} ms  (each row is its own best run: compare rows of one run)")
    print(f"  {'floor: Gaussian filtering + block sums':<42}{best(lambda: floor(x, block), repeats):>8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--wall", action="store_true", help="wall time instead of this process's CPU time")
    args = parser.parse_args()
    if args.wall:
        global CLOCK
        CLOCK = time.perf_counter
    model = shipped_niqe_model()
    paths = [
        args.data_root / "iqa" / "calibration_pyiqa" / "dist_dir" / "I04.bmp",
        sorted((args.data_root / "benchmarks" / "Urban100" / "HR").glob("*.png"))[1],
    ]
    for path in paths:
        report(path, model, 96, args.repeats)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()

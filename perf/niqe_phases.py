"""Where NIQE's time goes, phase by phase, on one calibration image (504x376) and one Urban100 image, with the numpy
kernels and with the compiled ones (numba, where it imports) side by side, and the floor: the Gaussian filtering
(x and x², 7-tap separable, float64, both scales) and the per-block sums alone, in numpy.

    PYTHONPATH=. python perf/niqe_phases.py [--data-root ../shared/data] [--repeats 20]

Times are the best of `repeats` runs in CPU time of this process, torch and numpy on one thread (`--wall` for
wall time); the numpy and the compiled version of each row alternate run by run, so that a busy machine slows
both alike. Compare rows of one run, and check `uptime`. The first compiled call (JIT compilation, or loading
numba's cache) happens before the timing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import torch

import sreval.metrics.niqe as niqe_module
from sreval.imageio import load_image, to_tensor
from sreval.metrics.niqe import (
    NUMPY_KERNELS,
    Kernels,
    NiqeModel,
    _batch_features,
    _uint8_valued,
    kernels,
    niqe,
    shipped_niqe_model,
)
from sreval.metrics.perceptual import pirm_plane
from sreval.protocol import Protocol

CLOCK = time.process_time  # CPU time of this process (one thread): steadier than wall time on a busy machine


def best(fn: Callable[[], object], repeats: int) -> float:
    return alternating([fn], repeats)[0]


def alternating(fns: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    """The best time of each of `fns` in ms, the functions taking turns run by run."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times, strict=True):
            start = CLOCK()
            fn()
            spent.append(CLOCK() - start)
    return [min(spent) * 1e3 for spent in times]


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
    compiled = kernels()
    half = NUMPY_KERNELS.imresize_half(x)
    s1, s2 = NUMPY_KERNELS.mscn_integer(x), NUMPY_KERNELS.mscn_float(half)
    feats = _batch_features(plane, block)
    phases: dict[str, Callable[[Kernels], object]] = {
        "checks (integer plane?, finite)": lambda k: (_uint8_valued(x), _uint8_valued(half), np.isfinite(x).all()),
        "MSCN scale 1 (integer ring sums)": lambda k: k.mscn_integer(x),
        "imresize 0.5": lambda k: k.imresize_half(x),
        "MSCN scale 2 (mirror-pair deviations)": lambda k: k.mscn_float(half),
        "block features scale 1 (products, AGGD)": lambda k: k.block_features(s1, block),
        "block features scale 2": lambda k: k.block_features(s2, block // 2),
    }
    for fn in phases.values():
        fn(compiled)  # compile, or load numba's cache
    pairs = {name: [partial(fn, NUMPY_KERNELS), partial(fn, compiled)] for name, fn in phases.items()}
    times = {name: alternating(pair, repeats) for name, pair in pairs.items()}
    with mock.patch.object(niqe_module, "_batch_features", lambda plane, block: feats):
        times["nanmean, nancov, pinv"] = [best(lambda: niqe(plane, model), repeats)] * 2

    def total_with(chosen: Kernels) -> Callable[[], object]:
        def run() -> object:
            with mock.patch.object(niqe_module, "kernels", lambda: chosen):
                return niqe(plane, model)

        return run

    totals = alternating([total_with(NUMPY_KERNELS), total_with(compiled)], repeats)
    print(f"{path.name} {w}x{h} ({feats.shape[1]} blocks)")
    print(f"  {'':<42}{'numpy':>8}   {compiled.name:>8}")
    for name, (ms_numpy, ms_compiled) in times.items():
        print(f"  {name:<42}{ms_numpy:>8.2f}   {ms_compiled:>8.2f} ms")
    sums = [sum(t[i] for t in times.values()) for i in (0, 1)]
    print(f"  {'sum of phases':<42}{sums[0]:>8.2f}   {sums[1]:>8.2f} ms")
    print(f"  {'niqe() total':<42}{totals[0]:>8.2f}   {totals[1]:>8.2f} ms  (each its own best run)")
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

"""What the performance scripts time with: torch on the device and CPU threads asked for, and the best of
repeated runs (the least noisy estimate on a shared machine)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def torch_device(name: str, threads: int | None = None) -> tuple[torch.device, Callable[[], None]]:
    """Device `name`, after setting torch's CPU threads (None or 0: torch's choice), and the call that waits for
    the work queued on it. CUDA runs asynchronously, so a timer must wait before it reads the clock; on the CPU
    there is nothing to wait for."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(name)
    return device, torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def best_times(fns: list[Callable[[], T]], repeats: int, sync: Callable[[], None]) -> tuple[list[float], list[T]]:
    """Best wall time of `repeats` (≥ 1) calls of each function and their last outputs.

    The functions take turns within each repeat, so a slow spell of a shared machine hits them alike.
    """
    best = [math.inf] * len(fns)
    outs: dict[int, T] = {}
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            sync()
            start = time.perf_counter()
            outs[k] = fn()
            sync()
            best[k] = min(best[k], time.perf_counter() - start)
    return best, [outs[k] for k in range(len(fns))]


def best_of(fn: Callable[[], T], repeats: int, sync: Callable[[], None]) -> tuple[float, T]:
    """Best wall time of `repeats` (≥ 1) calls of `fn`, and its last output."""
    (best,), (out,) = best_times([fn], repeats, sync)
    return best, out

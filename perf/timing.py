"""What the performance scripts time with: torch on the device and CPU threads asked for, and the best of
repeated runs (the least noisy estimate on a shared machine); and what they record with: `JsonFigures`, the
machine-readable copy of their tables that `--json PATH` writes."""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
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


def device_label(device: torch.device) -> str:
    """`cpu`, or a CUDA device with its index and name, e.g. `cuda:0 (NVIDIA H200)`."""
    if device.type != "cuda":
        return str(device)
    index = torch.cuda.current_device() if device.index is None else device.index
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def plain(value: object) -> object:
    """`value` as JSON holds it: mappings with str keys, lists, str, bool, int, float; a float that is not finite
    (a ratio of a skipped measurement) becomes None, so that the file stays strict JSON."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not a JSON value: {value!r}")


class JsonFigures:
    """A script's figures as one JSON object, rewritten whole after every row, so that a run stopped by a time
    limit leaves the rows it finished on disk. With no path nothing is written.

    The object: `script`, `device`, `torch` (version), `threads` (torch's CPU threads), `settings` (the options in
    effect), `rows` (one per set, image or model), `totals` (empty until the end) and `complete` (false until
    the script finished normally). Each write goes to PATH.tmp, which then replaces PATH: a reader sees the
    previous version or the new one, never part of one.
    """

    def __init__(self, path: str | Path | None, script: str, device: torch.device, settings: dict[str, object]) -> None:
        self.path = Path(path) if path is not None else None
        self.meta: dict[str, object] = {
            "script": script,
            "device": device_label(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "settings": settings,
        }
        self.rows: list[dict[str, object]] = []
        self.totals: dict[str, object] = {}
        self.complete = False

    def document(self) -> dict[str, object]:
        return {**self.meta, "rows": self.rows, "totals": self.totals, "complete": self.complete}

    def write(self) -> None:
        if self.path is None:
            return
        text = json.dumps(plain(self.document()), indent=2, allow_nan=False) + "\n"
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def add_row(self, row: dict[str, object]) -> None:
        """Record one finished row and rewrite the file."""
        self.rows.append(row)
        self.write()

    def finish(self, totals: dict[str, object]) -> None:
        """Record the totals, mark the figures complete and rewrite the file."""
        self.totals = totals
        self.complete = True
        self.write()

"""The one evaluation path: HR → LR (by the protocol) → SR (through the SR cache) → metric values (through the
metric cache). The benchmark runner and the study builder both take their images from here, so an SR image a
study shows is the one `run-benchmarks` scored, from the same cache entry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch

from sreval.benchmark.cache import Cache
from sreval.datasets.registry import Dataset, ImageEntry
from sreval.imageio import LoadedImage, pixels_sha256, to_tensor
from sreval.matlab.imresize import imresize
from sreval.methods.base import Method, MethodInput
from sreval.metrics import Metric, score_all
from sreval.protocol import Protocol


def make_lr(hr: torch.Tensor, protocol: Protocol) -> torch.Tensor:
    """(N, C, H, W) uint8 HR → LR: MATLAB bicubic ×1/scale in the protocol's variant. The only place LR is made."""
    return imresize(hr, 1 / protocol.scale, variant=protocol.degradation)


def method_input(
    dataset: Dataset, entry: ImageEntry, hr: LoadedImage, protocol: Protocol, device: torch.device | None = None
) -> MethodInput:
    """What methods see of one image; its LR is made (on `device`, default CPU) when a method first asks for it."""
    where = device or torch.device("cpu")
    return MethodInput(dataset, entry, hr, protocol, lambda: make_lr(to_tensor(hr.pixels).to(where), protocol), where)


class Source(Enum):
    """Where an SR image came from."""

    COMPUTED = "computed"
    CACHED = "cached"
    READ = "read"  # a method that reads existing files (a folder, the HR itself): never cached


def produce_sr(method: Method, item: MethodInput, cache: Cache | None) -> tuple[np.ndarray, Source]:
    """The SR image of `method` for `item`, and where it came from. The only SR cache lookup: computed outputs are
    looked up under `Cache.sr_key` (method identity, HR checksum, protocol) and stored there when computed."""
    if not method.computes_output:
        pixels, source = method.super_resolve(item), Source.READ
    else:
        key = Cache.sr_key(method.identity(), item.hr.sha256, item.protocol.key())
        cached = cache.get_sr(key) if cache is not None else None
        if cached is not None:
            pixels, source = cached, Source.CACHED
        else:
            pixels, source = method.super_resolve(item), Source.COMPUTED
            if cache is not None:
                cache.put_sr(key, pixels)
    return pixels, source


@dataclass
class Scores:
    """Metric values of one SR/HR pair by metric name, in the order of the metrics asked for."""

    values: dict[str, float]
    cached: int  # values taken from the metric cache
    computed: int


def score(sr: np.ndarray, hr_sha256: str, hr: torch.Tensor, metrics: Sequence[Metric], cache: Cache) -> Scores:
    """`metrics` of the pair (SR pixels, HR tensor on the device to score on), through the metric cache (key: SR
    pixel checksum and HR file checksum, then each metric's own key)."""
    key = Cache.pair_key(pixels_sha256(sr), hr_sha256)
    known = cache.get_metrics(key)
    values = {m.info.name: known[m.cache_key] for m in metrics if m.cache_key in known}
    missing = [m for m in metrics if m.cache_key not in known]
    fresh: dict[str, float] = {}
    if missing:
        scores = score_all(missing, to_tensor(sr).to(hr.device), hr)
        for metric in missing:
            values[metric.info.name] = fresh[metric.cache_key] = float(scores[metric.info.name][0])
    if fresh:
        cache.put_metrics(key, fresh)
    ordered = {m.info.name: values[m.info.name] for m in metrics}  # stable column order, cached or not
    return Scores(ordered, cached=len(metrics) - len(missing), computed=len(missing))

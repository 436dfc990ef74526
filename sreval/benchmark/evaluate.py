"""The one evaluation path: HR → LR (by the protocol) → SR (through the SR cache) → metric values (through the
metric cache). The benchmark runner and the study builder both take their images from here, so an SR image a
study shows is the one `run-benchmarks` scored: from the same cache entry, or for a method whose outputs are not
cached (`Method.cache_output`), from the same deterministic computation."""

from __future__ import annotations

import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch

from sreval.benchmark.cache import Cache
from sreval.datasets.registry import Dataset, ImageEntry
from sreval.imageio import LoadedImage, pixels_sha256, to_tensor
from sreval.matlab.imresize import imresize
from sreval.methods.base import Method, MethodInput
from sreval.metrics import LumaMetric, Metric, score_all
from sreval.protocol import Protocol


def make_lr(hr: torch.Tensor, protocol: Protocol) -> torch.Tensor:
    """(N, C, H, W) uint8 HR → LR: MATLAB bicubic ×1/scale in the protocol's variant. The only place LR is made."""
    return imresize(hr, 1 / protocol.scale, variant=protocol.degradation)


#: Seconds by phase name, added to as the work is done (a run's `timings`).
Timings = MutableMapping[str, float]


def _add(timings: Timings | None, phase: str, seconds: float) -> None:
    if timings is not None:
        timings[phase] = timings.get(phase, 0.0) + seconds


def method_input(
    dataset: Dataset,
    entry: ImageEntry,
    hr: LoadedImage,
    protocol: Protocol,
    device: torch.device | None = None,
    *,
    timings: Timings | None = None,
) -> MethodInput:
    """What methods see of one image; its LR is made (on `device`, default CPU) when a method first asks for it,
    and the time that takes is added to `timings["lr"]`."""
    where = device or torch.device("cpu")

    def degrade() -> torch.Tensor:
        tick = time.perf_counter()
        lr = make_lr(to_tensor(hr.pixels).to(where), protocol)
        _add(timings, "lr", time.perf_counter() - tick)
        return lr

    return MethodInput(dataset, entry, hr, protocol, degrade, where)


class Source(Enum):
    """Where an SR image came from."""

    COMPUTED = "computed"
    CACHED = "cached"
    READ = "read"  # a method that reads existing files (a folder, the HR itself): never cached


def sr_cache_key(method: Method, item: MethodInput) -> str:
    """The key of `method`'s output for `item`: method identity, HR checksum, protocol."""
    return Cache.sr_key(method.identity(), item.hr.sha256, item.protocol.key())


def produce_sr(
    method: Method, item: MethodInput, cache: Cache | None, *, timings: Timings | None = None
) -> tuple[np.ndarray, Source]:
    """The SR image of `method` for `item`, and where it came from. The only SR cache lookup: computed outputs of
    a method that keeps them (`Method.cache_output`) are looked up under `sr_cache_key` and stored there when
    computed; the others are computed each time (the same pixels: the key fixes them).

    `timings`: the cache lookup and the method go to "sr" (less the LR made meanwhile, which is "lr"), writing
    the cache entry to "encode". The entry is written before this returns, so no value is ever stored for an SR
    image whose cache file was not written."""
    tick = time.perf_counter()
    lr_before = timings.get("lr", 0.0) if timings is not None else 0.0

    def sr_done() -> None:
        lr_made = (timings.get("lr", 0.0) if timings is not None else 0.0) - lr_before
        _add(timings, "sr", time.perf_counter() - tick - lr_made)

    if not method.computes_output:
        pixels, source = method.super_resolve(item), Source.READ
        sr_done()
        return pixels, source
    kept = cache is not None and method.cache_output
    key = sr_cache_key(method, item)
    cached = cache.get_sr(key) if kept and cache is not None else None
    if cached is not None:
        sr_done()
        return cached, Source.CACHED
    pixels = method.super_resolve(item)
    sr_done()
    if kept and cache is not None:
        tick = time.perf_counter()
        cache.put_sr(key, pixels)
        _add(timings, "encode", time.perf_counter() - tick)
    return pixels, Source.COMPUTED


@dataclass
class Scores:
    """Metric values of one SR/HR pair by metric name, in the order of the metrics asked for."""

    values: dict[str, float]
    cached: int  # values taken from the metric cache
    computed: int


def timed_apart(metrics: Sequence[Metric]) -> list[str]:
    """Names of the metrics whose time is a phase of its own (all but PSNR/SSIM/RMSE, which share "metrics")."""
    return [m.info.name for m in metrics if not isinstance(m, LumaMetric)]


def _metric_keys(metrics: Sequence[Metric]) -> dict[str, str]:
    """Each metric's cache key by name (each key hashes the protocol: made once per output)."""
    return {m.info.name: m.cache_key for m in metrics}


def evaluate_output(
    method: Method,
    item: MethodInput,
    hr: torch.Tensor,
    metrics: Sequence[Metric],
    cache: Cache,
    *,
    timings: Timings | None = None,
    reference_planes: dict[object, torch.Tensor] | None = None,
) -> tuple[Scores, Source]:
    """`metrics` of `method`'s output for `item` (HR tensor on the device to score on), and where the output came
    from. A computed output whose values are all known under its output key (`Cache.output_key`) is neither
    computed nor read, and counts as cached; otherwise it is produced (`produce_sr`) and scored (`score`), and its
    values are remembered under the output key as well. `timings`, `reference_planes`: as for `score`."""
    keys = _metric_keys(metrics)
    output_key = None
    if method.computes_output:
        tick = time.perf_counter()
        output_key = Cache.output_key(sr_cache_key(method, item))
        known = cache.get_metrics(output_key)
        _add(timings, "metrics", time.perf_counter() - tick)
        if all(key in known for key in keys.values()):
            return Scores({name: known[key] for name, key in keys.items()}, len(metrics), 0), Source.CACHED
    sr, source = produce_sr(method, item, cache, timings=timings)
    scores = score(
        sr, item.hr.sha256, hr, metrics, cache,
        timings=timings, reference_planes=reference_planes, output_key=output_key, metric_keys=keys,
    )  # fmt: skip
    return scores, source


def score(
    sr: np.ndarray,
    hr_sha256: str,
    hr: torch.Tensor,
    metrics: Sequence[Metric],
    cache: Cache,
    *,
    timings: Timings | None = None,
    reference_planes: dict[object, torch.Tensor] | None = None,
    output_key: str | None = None,
    metric_keys: dict[str, str] | None = None,
) -> Scores:
    """`metrics` of the pair (SR pixels, HR tensor on the device to score on), through the metric cache (key: SR
    pixel checksum and HR file checksum, then each metric's own key).

    `timings`: each metric of `timed_apart` adds its time under its name, the rest (hashing, the metric cache,
    PSNR/SSIM/RMSE) under "metrics". `reference_planes`: one dict per HR image, so that its luma plane is made
    once for all the methods scored against it (see `score_all`). `output_key`: the values are also remembered
    there (see `evaluate_output`). `metric_keys`: `_metric_keys(metrics)` when the caller has them."""
    tick = time.perf_counter()
    key = Cache.pair_key(pixels_sha256(sr), hr_sha256)
    known = cache.get_metrics(key)
    keys = metric_keys if metric_keys is not None else _metric_keys(metrics)
    values = {name: known[key] for name, key in keys.items() if key in known}
    missing = [m for m in metrics if keys[m.info.name] not in known]
    fresh: dict[str, float] = {}
    apart: dict[str, float] = {}
    if missing:
        own = dict.fromkeys(timed_apart(missing), 0.0)
        scores = score_all(missing, to_tensor(sr).to(hr.device), hr, timings=own, reference_planes=reference_planes)
        for metric in missing:
            values[metric.info.name] = fresh[keys[metric.info.name]] = float(scores[metric.info.name][0])
        apart = {name: own[name] for name in timed_apart(missing)}
    if fresh:
        cache.put_metrics(key, fresh)
    if output_key is not None:
        cache.put_metrics(output_key, {keys[name]: value for name, value in values.items()})
    for name, seconds in apart.items():
        _add(timings, name, seconds)
    _add(timings, "metrics", time.perf_counter() - tick - sum(apart.values()))
    ordered = {m.info.name: values[m.info.name] for m in metrics}  # stable column order, cached or not
    return Scores(ordered, cached=len(metrics) - len(missing), computed=len(missing))

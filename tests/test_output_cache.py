"""Which outputs the SR cache keeps, and how a warm run gets its values without the SR image.

The interpolation baselines are cheaper to compute again than to write and read back as PNG, so their outputs are
not cached; a network's are. Every computed output's metric values are also remembered under the output's own
key (method, HR, protocol), so that a run whose values are all known neither reads nor computes the SR image."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sreval.benchmark.cache import Cache
from sreval.benchmark.evaluate import method_input
from sreval.benchmark.runner import BenchmarkResult, run_benchmarks
from sreval.datasets.registry import load_hr, parse_datasets
from sreval.imageio import load_image
from sreval.methods.base import Method, MethodInput
from sreval.methods.baselines import Bicubic, NearestNeighbour
from sreval.metrics import parse_metrics
from sreval.protocol import Protocol
from sreval.results import open_store
from sreval.study import open_study_store
from sreval.study.builder import build_study


class Brightened(Method):
    """A computed method whose output is worth caching (as a network's is), cheap enough for a test."""

    name = "brightened"

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "offset": 3}

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        up = item.lr.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
        return (up.to(torch.int16) + 3).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy().copy()


def _run(
    tmp: Path, data_root: Path, methods: list[Method], metrics: tuple[str, ...] = ("psnr", "ssim")
) -> BenchmarkResult:
    protocol = Protocol()
    store = open_store(f"sqlite:///{tmp / 'results.db'}")
    try:
        return run_benchmarks(
            methods, parse_datasets(["set5"]), parse_metrics(list(metrics), protocol),
            protocol=protocol, data_root=data_root, cache=Cache(tmp / "cache", metric_store=store),
            device=torch.device("cpu"), progress=False, workers=1,
        )  # fmt: skip
    finally:
        store.close()


def _pngs(tmp: Path) -> list[Path]:
    return sorted((tmp / "cache").rglob("*.png"))


def test_interpolation_outputs_are_not_written_to_the_cache_but_a_computed_method_s_are(
    tmp_path: Path, data_root: Path
) -> None:
    baselines = _run(tmp_path / "baselines", data_root, [Bicubic(), NearestNeighbour()])
    assert _pngs(tmp_path / "baselines") == [] and baselines.timings["encode"] == 0.0
    assert baselines.counts.sr_computed == 10
    network_like = _run(tmp_path / "brightened", data_root, [Brightened()])
    assert len(_pngs(tmp_path / "brightened")) == 5 and network_like.timings["encode"] > 0


def test_a_warm_run_neither_reads_nor_computes_the_sr_images(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    methods: list[Method] = [Bicubic(), NearestNeighbour(), Brightened()]
    cold = _run(tmp_path, data_root, methods)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a warm run must not need the SR image")

    for cls in (Bicubic, NearestNeighbour, Brightened):
        monkeypatch.setattr(cls, "super_resolve", forbidden)
    monkeypatch.setattr(Cache, "get_sr", forbidden)
    monkeypatch.setattr("sreval.benchmark.evaluate.make_lr", forbidden)
    warm = _run(tmp_path, data_root, methods)
    assert warm.per_image.equals(cold.per_image)
    assert warm.counts.sr_cached == 15 and warm.counts.sr_computed == 0 and warm.counts.metrics_computed == 0
    assert warm.timings["lr"] == warm.timings["sr"] == warm.timings["encode"] == 0.0


def test_a_metric_added_later_recomputes_the_baseline_output_and_only_that_metric(
    tmp_path: Path, data_root: Path
) -> None:
    first = _run(tmp_path, data_root, [Bicubic()], metrics=("psnr",))
    more = _run(tmp_path, data_root, [Bicubic()], metrics=("psnr", "rmse"))
    assert more.counts.sr_computed == 5 and more.counts.metrics_cached == 5 and more.counts.metrics_computed == 5
    psnr = more.per_image[more.per_image["metric"] == "psnr"].reset_index(drop=True)
    assert psnr.equals(first.per_image)
    again = _run(tmp_path, data_root, [Bicubic()], metrics=("rmse", "psnr"))
    assert again.counts.sr_cached == 5 and again.counts.metrics_computed == 0


def test_values_known_under_the_output_key_match_a_run_without_cache(tmp_path: Path, data_root: Path) -> None:
    """The output key stands for the output's pixels: a warm run's values are those of a fresh computation."""
    methods: list[Method] = [NearestNeighbour(), Brightened()]
    _run(tmp_path / "shared", data_root, methods, metrics=("psnr", "ssim", "rmse"))
    warm = _run(tmp_path / "shared", data_root, methods, metrics=("psnr", "ssim", "rmse"))
    fresh = _run(tmp_path / "fresh", data_root, methods, metrics=("psnr", "ssim", "rmse"))
    assert warm.counts.metrics_computed == 0 and fresh.counts.metrics_cached == 0
    assert warm.per_image.equals(fresh.per_image)


def test_a_study_shows_the_baseline_output_that_the_benchmark_scored(tmp_path: Path, data_root: Path) -> None:
    _run(tmp_path, data_root, [Bicubic()])
    with open_study_store(f"sqlite:///{tmp_path / 'study.sqlite'}") as store:
        build_study(store, "s", ["bicubic"], ["set5"], data_root=data_root, gold_images=0, calibration_images=0,
                    folder=tmp_path / "stimuli", seed=1, cache=Cache(tmp_path / "cache"))  # fmt: skip
    shown = [load_image(p).pixels for p in sorted((tmp_path / "stimuli").glob("*.png"))]
    protocol = Protocol()
    dataset = parse_datasets(["set5"])[0]
    scored = [
        Bicubic().super_resolve(method_input(dataset, entry, load_hr(entry, data_root), protocol))
        for entry in dataset.images
    ]
    assert len(shown) == 5 and _pngs(tmp_path) == []
    for pixels in shown:
        assert sum(np.array_equal(pixels, s) for s in scored) == 1


# --- Metric values written once per HR image -------------------------------------------------------------


def test_batched_values_reach_the_store_in_one_transaction_at_the_end_of_the_block(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    try:
        cache = Cache(tmp_path / "cache", metric_store=store)
        cache.put_metrics("before", {"psnr": 1.0})  # outside a block: at once
        assert store.cached_metrics("before") == {"psnr": 1.0}
        with cache.batched_writes():
            cache.put_metrics("a", {"psnr": 30.5})
            cache.put_metrics("a", {"ssim": 0.5})
            cache.put_metrics("b", {"psnr": 20.0})
            assert store.cached_metrics("a") == {}  # not written yet ...
            assert cache.get_metrics("a") == {"psnr": 30.5, "ssim": 0.5}  # ... but seen by this thread
            with pytest.raises(RuntimeError, match="do not nest"), cache.batched_writes():
                pass
        assert store.cached_metrics("a") == {"psnr": 30.5, "ssim": 0.5} and store.cached_metrics("b") == {"psnr": 20.0}
        with pytest.raises(KeyError), cache.batched_writes():
            cache.put_metrics("c", {"psnr": 1.0})
            raise KeyError("an image fails")
        assert store.cached_metrics("c") == {}  # an unfinished image's values are dropped
        cache.put_metrics("d", {"psnr": 2.0})  # and the thread is back to writing at once
        assert store.cached_metrics("d") == {"psnr": 2.0}
    finally:
        store.close()


def test_a_run_writes_the_metric_cache_once_per_hr_image(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sreval.results.store import Store

    writes: list[int] = []
    real = Store.cache_metrics

    def counted(self: Store, entries: Mapping[str, Mapping[str, float]]) -> None:
        writes.append(len(entries))
        real(self, entries)

    monkeypatch.setattr(Store, "cache_metrics", counted)
    _run(tmp_path, data_root, [Bicubic(), NearestNeighbour(), Brightened()])
    assert writes == [6] * 5  # three outputs, each under its pixel key and its output key

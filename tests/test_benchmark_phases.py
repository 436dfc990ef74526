"""A benchmark run's phase timings, its worker threads, and the work it no longer repeats (the HR luma plane per
method, forcing cache PNGs to disk)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from benchmark_helpers import run_baselines

from sreval.benchmark.cache import Cache
from sreval.benchmark.runner import PHASES
from sreval.datasets.registry import load_hr, parse_datasets
from sreval.errors import ParameterError
from sreval.imageio import load_image, save_png, to_tensor
from sreval.matlab import color
from sreval.matlab.color import YMode, rgb_to_y
from sreval.methods.base import MethodInput
from sreval.methods.baselines import NearestNeighbour
from sreval.metrics import parse_metrics, score_all
from sreval.protocol import Protocol


def test_a_cold_run_times_each_phase_and_one_worker_s_phases_account_for_most_of_the_total(
    tmp_path: Path, data_root: Path
) -> None:
    result = run_baselines(tmp_path, data_root, workers=1)
    timings = result.timings
    assert list(timings) == [*PHASES, "niqe", "total"]  # the order the CLI prints them in
    assert PHASES == ("decode", "lr", "sr", "encode", "metrics")
    assert timings["encode"] == 0.0  # the baselines' outputs are not cached (tests/test_output_cache.py)
    assert all(seconds > 0 for phase, seconds in timings.items() if phase != "encode"), timings
    phases = sum(v for k, v in timings.items() if k != "total")
    # Between the phases there is only loop bookkeeping, planning and the final tables.
    assert 0.8 * timings["total"] <= phases <= timings["total"], timings
    assert result.record.timings == timings  # stored with the run


def test_a_warm_run_makes_no_lr_no_sr_and_writes_no_png(tmp_path: Path, data_root: Path) -> None:
    cold = run_baselines(tmp_path, data_root, workers=1)
    warm = run_baselines(tmp_path, data_root, workers=1)
    assert warm.counts.sr_cached == 10 and warm.counts.metrics_computed == 0
    assert warm.timings["lr"] == warm.timings["sr"] == warm.timings["encode"] == warm.timings["niqe"] == 0.0
    assert warm.timings["decode"] > 0 and warm.timings["metrics"] > 0
    assert warm.per_image.equals(cold.per_image)


def test_workers_give_the_values_counts_and_order_of_a_single_worker(tmp_path: Path, data_root: Path) -> None:
    one = run_baselines(tmp_path / "one", data_root, workers=1, datasets=("set5", "set14"))
    three = run_baselines(tmp_path / "three", data_root, workers=3, datasets=("set5", "set14"))
    # Set14's wider images can differ in SSIM's last bit between torch thread counts (its sum is split among
    # threads); the workers run one torch thread each, as a single worker on a one-core machine does.
    assert one.per_image.drop(columns="value").equals(three.per_image.drop(columns="value"))
    np.testing.assert_allclose(three.per_image["value"], one.per_image["value"], rtol=1e-15, atol=0)
    set5 = one.per_image["dataset"] == "set5"
    assert three.per_image[set5].equals(one.per_image[set5])
    assert vars(one.counts) == vars(three.counts)
    assert [(i.dataset, i.image) for i in one.record.images] == [(i.dataset, i.image) for i in three.record.images]


def test_the_torch_thread_count_is_restored_after_arun_baselines(tmp_path: Path, data_root: Path) -> None:
    before = torch.get_num_threads()
    run_baselines(tmp_path, data_root, workers=2)
    assert torch.get_num_threads() == before


def test_an_error_in_a_worker_stops_the_run_with_that_error(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def failing(self: NearestNeighbour, item: MethodInput) -> np.ndarray:
        calls.append(item.entry.name)
        if len(calls) == 2:
            raise RuntimeError("boom in a worker")
        return item.hr.pixels.copy()

    monkeypatch.setattr(NearestNeighbour, "super_resolve", failing)
    with pytest.raises(RuntimeError, match="boom in a worker"):
        run_baselines(tmp_path, data_root, workers=2)


def test_workers_must_be_positive(tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ParameterError) as caught:
        run_baselines(tmp_path, data_root, workers=0)
    assert caught.value.parameter == "workers"


def test_the_reference_luma_plane_is_made_once_for_all_outputs_with_the_same_values(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol = Protocol()
    metrics = parse_metrics(["psnr", "ssim", "rmse"], protocol)
    hr = to_tensor(load_hr(parse_datasets(["set5"])[0].images[1], data_root).pixels)
    outputs = [hr.flip(-1).contiguous(), (hr // 2 * 2).contiguous(), hr.roll(1, dims=-2).contiguous()]
    plain = [score_all(metrics, sr, hr) for sr in outputs]
    made: list[int] = []
    real = rgb_to_y

    def counted(img: torch.Tensor, mode: YMode) -> torch.Tensor:
        made.append(1)
        return real(img, mode)

    monkeypatch.setattr("sreval.metrics.registry.rgb_to_y", counted)
    planes: dict[object, torch.Tensor] = {}
    shared = [score_all(metrics, sr, hr, reference_planes=planes) for sr in outputs]
    assert len(made) == len(outputs) + 1  # each output's plane, and the reference's once
    for a, b in zip(plain, shared, strict=True):
        assert {k: v.tolist() for k, v in a.items()} == {k: v.tolist() for k, v in b.items()}


def test_niqe_scores_the_output_luma_plane_that_psnr_made(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NIQE (PIRM: Y of the output, border shaved) takes the output's Y plane made for PSNR/SSIM/RMSE instead of
    converting the output again; the values are those of each metric alone."""
    protocol = Protocol()
    metrics = parse_metrics(["psnr", "ssim", "rmse", "niqe"], protocol)
    hr = to_tensor(load_hr(parse_datasets(["set5"])[0].images[2], data_root).pixels)
    outputs = [hr.flip(-1).contiguous(), (hr // 2 * 2).contiguous()]
    alone = [{m.info.name: m(sr, hr) for m in metrics} for sr in outputs]
    conversions: list[int] = []
    real = color._weighted_channels

    def counted(img: torch.Tensor, weights: tuple[float, float, float]) -> torch.Tensor:
        conversions.append(1)
        return real(img, weights)

    monkeypatch.setattr(color, "_weighted_channels", counted)
    planes: dict[object, torch.Tensor] = {}
    shared = [score_all(metrics, sr, hr, reference_planes=planes) for sr in outputs]
    assert len(conversions) == len(outputs) + 1  # each output's Y once, and the reference's once
    for a, b in zip(alone, shared, strict=True):
        assert {k: v.tolist() for k, v in a.items()} == {k: v.tolist() for k, v in b.items()}
    conversions.clear()
    score_all(metrics, outputs[0], hr)  # without a dict kept for the reference: still one Y per image
    assert len(conversions) == 2


def test_score_all_times_each_metric_under_its_name(data_root: Path) -> None:
    protocol = Protocol()
    hr = to_tensor(load_hr(parse_datasets(["set5"])[0].images[0], data_root).pixels)
    timings: dict[str, float] = {}
    score_all(parse_metrics(["psnr", "niqe"], protocol), hr.flip(-1).contiguous(), hr, timings=timings)
    assert set(timings) == {"psnr", "niqe"} and all(v > 0 for v in timings.values())


def test_cache_pngs_are_not_forced_to_disk_but_other_pngs_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    Cache(tmp_path / "cache").put_sr("ab" * 32, pixels)
    assert synced == []
    assert np.array_equal(load_image(next((tmp_path / "cache").rglob("*.png"))).pixels, pixels)
    save_png(tmp_path / "kept.png", pixels)
    assert len(synced) == 1
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

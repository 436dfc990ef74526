"""The one evaluation path (`sreval.benchmark.evaluate`): LR by the protocol, SR through one cache lookup shared by
the benchmark runner and the study builder, scores through the metric cache; `hr` as an ordinary method; inference
settings stored with the run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sreval import zoo
from sreval.archs import create_model
from sreval.benchmark.cache import Cache
from sreval.benchmark.evaluate import Source, make_lr, method_input, produce_sr
from sreval.benchmark.runner import run_benchmarks
from sreval.cli import main
from sreval.datasets.registry import get_dataset, load_hr, parse_datasets
from sreval.errors import ParameterError
from sreval.imageio import load_image, to_tensor
from sreval.inference import InferenceOptions
from sreval.matlab.imresize import imresize
from sreval.methods.base import Method, MethodInput
from sreval.methods.baselines import Reference
from sreval.methods.specs import create_method, parse_methods
from sreval.metrics import create_metric
from sreval.protocol import Protocol
from sreval.results import open_store
from sreval.study import open_study_store
from sreval.study.builder import build_study

TINY = {"num_blocks": 1, "num_feat": 8}


def test_lr_is_matlab_bicubic_of_the_hr_in_the_protocols_variant(data_root: Path) -> None:
    dataset = get_dataset("set5")
    entry = dataset.images[0]
    hr = load_hr(entry, data_root)
    protocol = Protocol(degradation="double")
    item = method_input(dataset, entry, hr, protocol)
    expected = imresize(to_tensor(hr.pixels), 1 / 4, variant="double")
    assert torch.equal(item.lr, expected) and torch.equal(make_lr(to_tensor(hr.pixels), protocol), expected)


def test_the_runner_and_the_study_builder_take_sr_images_from_the_same_cache_entries(
    env: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    zoo.save_model(create_model("srresnet", **TINY), "tiny-sr", "srresnet", TINY, scale=4, recipe="test",
                   description="tiny random test model")  # fmt: skip
    network = create_method("tiny-sr")
    cache = Cache(env / "cache")
    datasets = parse_datasets(["set5"])
    protocol = Protocol()
    first = run_benchmarks([network], datasets, [create_metric("psnr")], protocol=protocol, data_root=data_root,
                           cache=cache, device=torch.device("cpu"), progress=False)  # fmt: skip
    assert first.counts.sr_computed == 5
    cached = {p.name: load_image(p).pixels for p in (env / "cache").rglob("*.png")}
    assert len(cached) == 5

    def must_not_compute(self: Method, item: MethodInput) -> np.ndarray:
        raise AssertionError("the study must take the runner's cached output")

    monkeypatch.setattr(type(network), "super_resolve", must_not_compute)
    with open_study_store(f"sqlite:///{env / 'study.sqlite'}") as store:
        build_study(store, "s", ["tiny-sr"], ["set5"], data_root=data_root, gold_images=0, calibration_images=0,
                    folder=env / "stimuli", seed=1, cache=cache)  # fmt: skip
    shown = [load_image(p).pixels for p in sorted((env / "stimuli").glob("*.png"))]
    assert len(shown) == 5 and {p.name for p in (env / "cache").rglob("*.png")} == set(cached)
    for pixels in shown:
        assert any(np.array_equal(pixels, c) for c in cached.values())
    # and the other way round: what one side computes, the other reads, through the one lookup
    dataset = datasets[0]
    entry = dataset.images[0]
    item = method_input(dataset, entry, load_hr(entry, data_root), protocol)
    pixels, source = produce_sr(network, item, cache)
    assert source is Source.CACHED and any(np.array_equal(pixels, c) for c in cached.values())


def test_hr_is_an_ordinary_method_and_scores_a_perfect_output(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(create_method("hr"), Reference) and [m.name for m in parse_methods(["hr", "nn"])] == ["hr", "nn"]
    out = env / "out"
    args = ["run-benchmarks", "--methods", "hr,bicubic", "--datasets", "set5", "--metrics", "psnr,ssim",
            "--out", str(out), "-q"]  # fmt: skip
    assert main(args) == 0
    assert "5 read from folders" in capsys.readouterr().out  # nothing computed, so nothing cached for hr
    summary = pd.read_csv(out / "summary.csv").set_index(["method", "metric"])["mean"]
    assert summary[("hr", "psnr")] == float("inf") and summary[("hr", "ssim")] == pytest.approx(1.0)
    assert summary[("bicubic", "psnr")] == pytest.approx(28.42, abs=0.01)


def test_inference_settings_are_stored_with_the_run_outside_the_cache_identity(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    zoo.save_model(create_model("srresnet", **TINY), "tiny-sr", "srresnet", TINY, scale=4, recipe="test",
                   description="tiny random test model")  # fmt: skip
    for tile in ("48", "64"):
        args = ["run-benchmarks", "--methods", "tiny-sr", "--datasets", "set5", "--metrics", "psnr",
                "--out", str(env / tile), "-q", "--tile", tile, "--batch", "2"]  # fmt: skip
        assert main(args) == 0
    assert "SR images: 0 computed, 5 from cache" in capsys.readouterr().out  # other tiles: same outputs
    store = open_store(f"sqlite:///{env / 'results.sqlite'}")
    try:
        runs = [store.get_run(int(i)) for i in store.list_runs()["id"]]
    finally:
        store.close()
    settings = [run.methods[0].metadata["inference"] for run in runs]
    assert sorted(s["tile"] for s in settings) == [48, 64] and {s["batch"] for s in settings} == {2}
    assert {s["precision"] for s in settings} == {"fp32"} and {"overlap", "compile"} <= settings[0].keys()
    method = create_method("tiny-sr", options=InferenceOptions(tile=48))
    assert method.stored_metadata()["inference"]["tile"] == 48 and "inference" not in method.metadata()


def test_bad_arguments_name_their_parameter() -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: parse_methods("nn,bicubic"), "methods"),
        (lambda: parse_methods([" "]), "methods"),
        (lambda: parse_methods(["nn", "bicubik"]), "methods"),
        (lambda: parse_datasets("set5"), "datasets"),
        (lambda: parse_datasets(["set7"]), "datasets"),
        (lambda: create_method("folder:"), "spec"),
        (lambda: Protocol(scale=5), "scale"),
        (lambda: Protocol(y_mode="bt709"), "y_mode"),  # type: ignore[arg-type]
        (lambda: InferenceOptions(batch=0), "batch"),
    ]
    for call, parameter in cases:
        with pytest.raises(ParameterError) as caught:
            call()
        assert caught.value.parameter == parameter and "--" not in str(caught.value)

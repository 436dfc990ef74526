"""Validation during training: the benchmark path on the generator being trained. Its numbers are the ones
`run-benchmarks` gives the exported weights, to the last digit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import safetensors.torch
import torch

from sreval import zoo
from sreval.archs import create_model
from sreval.benchmark.cache import Cache
from sreval.benchmark.runner import run_benchmarks
from sreval.datasets.registry import get_dataset
from sreval.errors import SrevalError
from sreval.methods.network import zoo_method
from sreval.metrics import create_metric
from sreval.protocol import Protocol
from sreval.train.export import add_run
from sreval.train.loop import TrainOptions, train
from sreval.train.validation import validate
from tests.train_helpers import TINY_G, make_train_dir, tiny


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_train_dir(tmp_path_factory.mktemp("train"))


def test_missing_validation_data_fails_before_training(train_dir: Path, tmp_path: Path) -> None:
    recipe = tiny("srresnet-mse", steps=2, validate_every=1)
    options = TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"),
                           data_root=tmp_path / "nowhere", progress=False)
    with pytest.raises(SrevalError, match="benchmark file\\(s\\) missing"):
        train(recipe, options)
    assert not (tmp_path / "run").exists()


def test_validation_equals_run_benchmarks_on_the_exported_weights(
    train_dir: Path, tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    recipe = tiny("srresnet-mse", steps=2, validate_every=2, validation_sets=["set5"])
    run = tmp_path / "run"
    device = torch.device("cpu")
    result = train(recipe, TrainOptions(out=run, train_dir=train_dir, device=device, data_root=data_root,
                                        progress=False))
    (row,) = result.validation
    assert row["dataset"] == "set5" and row["n"] == 5 and 5 < row["psnr"] < 40 and 0 < row["ssim"] < 1
    logged = pd.read_csv(run / "validation.csv")
    assert list(logged["step"]) == [2] and logged["psnr"].iloc[0] == pytest.approx(row["psnr"])

    # The same weights, exported to the zoo and scored as `run-benchmarks` scores a zoo model.
    add_run(run, "tiny-srresnet")
    method = zoo_method("tiny-srresnet")  # what the method spec "tiny-srresnet" resolves to
    assert method is not None
    protocol = Protocol(scale=recipe.scale, degradation=recipe.degradation)
    benchmark = run_benchmarks(
        [method],
        [get_dataset("set5")],
        [create_metric("psnr", protocol), create_metric("ssim", protocol)],
        protocol=protocol,
        data_root=data_root,
        cache=Cache(tmp_path / "cache", enabled=False),
        device=device,
        progress=False,
    )
    scored = {r["metric"]: r for r in benchmark.summary.to_dict("records")}
    assert scored["psnr"]["n"] == scored["ssim"]["n"] == row["n"]
    assert abs(row["psnr"] - scored["psnr"]["mean"]) <= 1e-9
    assert abs(row["ssim"] - scored["ssim"]["mean"]) <= 1e-9

    # validate() itself, on the final generator read back from the run, gives the same row.
    generator = create_model(recipe.generator, scale=recipe.scale, **recipe.generator_args)
    generator.load_state_dict(safetensors.torch.load_file(str(run / "final" / "generator.safetensors")))
    generator.train()
    (again,) = validate(generator, recipe, data_root, device)
    assert again["n"] == row["n"] and generator.training  # given back in training mode
    assert abs(again["psnr"] - row["psnr"]) <= 1e-9 and abs(again["ssim"] - row["ssim"]) <= 1e-9


def test_validation_of_a_model_that_outputs_nan_fails_naming_the_image(
    train_dir: Path, tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BatchNorm running statistics that are NaN leave training (batch statistics) finite, but make every
    evaluation-mode output NaN: validation must say so rather than log a PSNR of the clamped NaNs."""
    from sreval.archs import create_model

    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    torch.manual_seed(0)
    broken = create_model("srresnet", **TINY_G["srresnet"])
    running_mean = dict(broken.named_buffers())["body.2.running_mean"]
    with torch.no_grad():
        running_mean.fill_(float("nan"))
    zoo.save_model(broken, "nan-bn", "srresnet", TINY_G["srresnet"], description="NaN BatchNorm statistics")
    recipe = tiny("srresnet-mse", steps=1, validate_every=1, validation_sets=["set5"], init_from="nan-bn")
    options = TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"),
                           data_root=data_root, progress=False)
    with pytest.raises(SrevalError, match=r"validation.*set5/baby.*NaN"):
        train(recipe, options)
    assert not (tmp_path / "run" / "validation.csv").is_file() or len(
        pd.read_csv(tmp_path / "run" / "validation.csv")
    ) == 0

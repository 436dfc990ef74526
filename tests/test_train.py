"""`sreval train`: recipes, and the loop end to end for every recipe at tiny scale (checkpoints, resume and
multi-process runs: test_train_resume.py; validation: test_train_validation.py; `sreval zoo add`:
test_train_export.py).

VGG-based recipes run with a stand-in VGG19 that the test creates (random weights, torchvision's layout):
these tests check that the recipes run and learn, not what a real VGG19 would give. Nothing here is a result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch

from sreval.errors import SrevalError
from sreval.train import recipes
from sreval.train.checkpoints import checkpoint_dirs
from sreval.train.loop import TrainOptions, train
from tests.standin_models import standin_vgg19
from tests.train_helpers import make_train_dir, tiny


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_train_dir(tmp_path_factory.mktemp("train"))


# --- recipes -------------------------------------------------------------------------------------------------


def test_recipe_table_matches_the_papers() -> None:
    assert set(recipes.RECIPES) == {
        "srresnet-mse",
        "srresnet-vgg22",
        "srgan-mse",
        "srgan-vgg22",
        "srgan-vgg54",
        "enhancenet-e",
        "enhancenet-pat",
        "esrgan-psnr",
        "esrgan",
    }
    srgan = recipes.get_recipe("srgan-vgg54")
    assert (srgan.lr, srgan.betas[0], srgan.steps, srgan.milestones, srgan.gamma) == (
        1e-4,
        0.9,
        200_000,
        [100_000],
        0.1,
    )
    assert srgan.losses == {"vgg54": 1.0, "gan": 1e-3} and srgan.init_from == "srresnet-mse" and srgan.crop == 96
    psnr = recipes.get_recipe("esrgan-psnr")
    assert (psnr.lr, psnr.crop, psnr.losses, psnr.milestones[:2]) == (2e-4, 128, {"l1": 1.0}, [200_000, 400_000])
    esrgan = recipes.get_recipe("esrgan")
    assert esrgan.losses == {"vgg54_pre": 1.0, "ragan": 5e-3, "l1": 1e-2}
    assert (esrgan.lr, esrgan.milestones, esrgan.steps) == (1e-4, [50_000, 100_000, 200_000, 300_000], 400_000)
    assert esrgan.init_from == "esrgan-psnr" and esrgan.betas == (0.9, 0.999)


def test_overrides_and_scaling(tmp_path: Path) -> None:
    r = recipes.get_recipe("esrgan")
    scaled = r.scaled_to(400)
    assert scaled.milestones == [50, 100, 200, 300] and scaled.steps == 400
    over = recipes.with_overrides(r, recipes.parse_set(["lr=2e-4", "milestones=[10, 20]", "losses={l1: 1}"]))
    assert (over.lr, over.milestones, over.losses) == (2e-4, [10, 20], {"l1": 1})
    with pytest.raises(SrevalError, match="unknown recipe key 'learning_rate'"):
        recipes.with_overrides(r, {"learning_rate": 1})
    config = tmp_path / "o.yaml"
    config.write_text("batch: 8\nbogus: 1\n")
    with pytest.raises(SrevalError, match=r"o.yaml: unknown recipe key 'bogus'"):
        recipes.with_overrides(r, recipes.load_overrides(config), str(config))
    with pytest.raises(SrevalError, match="unknown loss term"):
        recipes.with_overrides(r, {"losses": {"perceptualish": 1}})
    with pytest.raises(SrevalError, match="GAN term needs a discriminator"):
        recipes.with_overrides(recipes.get_recipe("srresnet-mse"), {"losses": {"gan": 1}})
    with pytest.raises(SrevalError, match="KEY=VALUE"):
        recipes.parse_set(["lr"])
    with pytest.raises(SrevalError, match="unknown recipe"):
        recipes.get_recipe("srgan-vgg99")


# --- every recipe runs and learns -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_every_recipe_runs_end_to_end(name: str, train_dir: Path, tmp_path: Path) -> None:
    recipe = tiny(name, steps=3)
    vgg = standin_vgg19(tmp_path / "vgg19-standin.pth") if recipe.needs_vgg else None
    options = TrainOptions(
        out=tmp_path / "run",
        train_dir=train_dir,
        device=torch.device("cpu"),
        vgg_weights=vgg,
        allow_unverified_vgg=vgg is not None,
        progress=False,
    )
    result = train(recipe, options)
    assert result.finished and result.step == 3
    log = pd.read_csv(tmp_path / "run" / "train_log.csv")
    assert list(log["step"]) == [1, 2, 3]
    assert set(recipe.losses) <= set(log.columns) and np.isfinite(log["total"]).all()
    if recipe.gan_term:
        assert np.isfinite(log["d_loss"]).all()
    assert (tmp_path / "run" / "final" / "generator.safetensors").is_file()
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["step_00000002", "step_00000003"]


def test_mse_training_reduces_the_loss(train_dir: Path, tmp_path: Path) -> None:
    recipe = tiny("srresnet-mse", steps=40, lr=1e-3, log_every=1, checkpoint_every=0)
    train(recipe, TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"), progress=False))
    loss = pd.read_csv(tmp_path / "run" / "train_log.csv")["mse"].to_numpy()
    assert loss[-10:].mean() < 0.5 * loss[:5].mean()


def test_init_from_a_run_and_a_missing_vgg(train_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tiny("srresnet-mse", steps=2)
    train(first, TrainOptions(out=tmp_path / "a", train_dir=train_dir, device=torch.device("cpu"), progress=False))
    second = tiny("srgan-mse", steps=1, init_from=str(tmp_path / "a"), lr=0.0)
    train(second, TrainOptions(out=tmp_path / "b", train_dir=train_dir, device=torch.device("cpu"), progress=False))
    a = safetensors.torch.load_file(str(tmp_path / "a" / "final" / "generator.safetensors"))
    b = safetensors.torch.load_file(str(tmp_path / "b" / "final" / "generator.safetensors"))
    assert torch.equal(
        a["head.0.weight"] if "head.0.weight" in a else next(iter(a.values())),
        b["head.0.weight"] if "head.0.weight" in b else next(iter(b.values())),
    )  # lr 0: unchanged
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("SREVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SREVAL_ASSETS", raising=False)
    with pytest.raises(SrevalError, match=r"vgg19-dcbb9e9d\.pth"):
        train(
            tiny("srgan-vgg54", steps=1),
            TrainOptions(out=tmp_path / "c", train_dir=train_dir, device=torch.device("cpu"), progress=False),
        )


def test_a_run_folder_of_another_recipe_is_refused(train_dir: Path, tmp_path: Path) -> None:
    options = TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"), progress=False)
    train(tiny("srresnet-mse", steps=2), options)
    with pytest.raises(SrevalError, match="different recipe"):
        train(tiny("srresnet-mse", steps=2, lr=5e-4), options)


@pytest.mark.slow
def test_compiled_channels_last_training_matches_eager(train_dir: Path, tmp_path: Path) -> None:
    """torch.compile + channels_last (the GPU defaults) give the eager fp32 losses up to float noise (slow on CPU:
    compilation takes about a minute)."""
    logs = []
    for name, extra in (("eager", {}), ("compiled", {"compile": True, "channels_last": True})):
        recipe = tiny("srresnet-mse", steps=3, **extra)
        train(recipe, TrainOptions(out=tmp_path / name, train_dir=train_dir, device=torch.device("cpu"),
                                   progress=False))
        logs.append(pd.read_csv(tmp_path / name / "train_log.csv")["total"].to_numpy())
    np.testing.assert_allclose(logs[1], logs[0], rtol=1e-3)

"""`sreval train`: recipes, the loop end to end for every recipe at tiny scale, checkpoints and resume after a
kill, multi-process (gloo) equivalence, and `sreval zoo add`.

VGG-based recipes run with a stand-in VGG19 that the test creates (random weights, torchvision's layout):
these tests check that the recipes run and learn, not what a real VGG19 would give. Nothing here is a result.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from PIL import Image

from sreval import zoo
from sreval.cli import main
from sreval.errors import SrevalError
from sreval.train import recipes
from sreval.train.loop import TrainOptions, checkpoint_dirs, train
from tests.standin_models import standin_vgg19

TINY_G = {
    "srresnet": {"num_blocks": 1, "num_feat": 8},
    "enhancenet": {"num_blocks": 1, "num_feat": 8},
    "rrdbnet": {"num_block": 1, "num_feat": 8, "num_grow_ch": 4},
}
TINY_D = {"num_feat": 8}


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve small natural-looking training images (smooth gradients + noise), one too small to crop."""
    folder = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for i in range(12):
        h, w = rng.integers(40, 70, size=2)
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / (3 + i)), np.cos(yy / (4 + i)), np.sin((xx + yy) / 7)], axis=-1)
        img = np.clip(127 + 80 * base + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:02d}.png")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "tiny.png")
    return folder


def tiny(name: str, **changes: Any) -> recipes.Recipe:
    r = recipes.get_recipe(name)
    overrides: dict[str, Any] = {
        "generator_args": TINY_G[r.generator],
        "crop": 32,
        "batch": 4,
        "workers": 0,
        "log_every": 1,
        "checkpoint_every": 2,
        "validate_every": 0,
        "init_from": None,
        "channels_last": False,
    }
    if r.discriminator:
        overrides["discriminator_args"] = TINY_D
    return recipes.with_overrides(r, {**overrides, **changes}).scaled_to(changes.get("steps", 4))


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


# --- checkpoints, kill and resume -----------------------------------------------------------------------------


def _cli_train(out: Path, train_dir: Path, steps: int, extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    return [
        sys.executable,
        "-m",
        "sreval",
        "train",
        "enhancenet-e",
        "--out",
        str(out),
        "--train-dir",
        str(train_dir),
        "--steps",
        str(steps),
        "--device",
        "cpu",
        "-q",
        "--set",
        "generator_args={num_blocks: 1, num_feat: 8}",
        "--set",
        "crop=32",
        "--set",
        "batch=4",
        "--set",
        "workers=0",
        "--set",
        "log_every=1",
        "--set",
        "checkpoint_every=3",
        "--set",
        "validate_every=0",
        "--set",
        "channels_last=false",
        *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env.pop("WORLD_SIZE", None)
    return env


def test_kill_and_resume_continue_the_same_run(train_dir: Path, tmp_path: Path) -> None:
    # Long enough that the run cannot reach its end between the poll that sees step 6 and the kill (tiny steps
    # take a few ms each here).
    steps = 48
    reference = tmp_path / "reference"
    subprocess.run(_cli_train(reference, train_dir, steps), check=True, env=_env(), timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli_train(killed, train_dir, steps, ["--set", "log_every=1"]), env=_env())
    deadline = time.monotonic() + 240
    while not any(p.name >= "step_00000006" for p in checkpoint_dirs(killed)):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = checkpoint_dirs(killed)[-1]
    assert done.name < f"step_{steps:08d}" and not (killed / "final").exists()
    subprocess.run(_cli_train(killed, train_dir, steps), check=True, env=_env(), timeout=300)

    ref_log = pd.read_csv(reference / "train_log.csv")
    res_log = pd.read_csv(killed / "train_log.csv")
    assert list(res_log["step"]) == list(range(1, steps + 1))  # no gap, no duplicate
    np.testing.assert_allclose(res_log["total"], ref_log["total"], rtol=1e-5)
    a = safetensors.torch.load_file(str(reference / "final" / "generator.safetensors"))
    b = safetensors.torch.load_file(str(killed / "final" / "generator.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_sigterm_checkpoints_at_the_next_step(train_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _cli_train(out, train_dir, 10_000, ["--set", "checkpoint_every=0"]),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "train_log.csv").is_file() or len(pd.read_csv(out / "train_log.csv")) < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopped at step" in stdout and "resume" in stdout
    (last,) = checkpoint_dirs(out)
    assert int(last.name.removeprefix("step_")) == len(pd.read_csv(out / "train_log.csv"))


# --- multi-process -------------------------------------------------------------------------------------------


def test_two_gloo_processes_equal_one_process(train_dir: Path, tmp_path: Path) -> None:
    """torchrun --nproc_per_node=2 on CPU (gloo): each rank takes half the global batch; the gradients are
    averaged, so the result equals one process with the whole batch (EnhanceNet has no BatchNorm)."""
    steps = 4
    single, double = tmp_path / "one", tmp_path / "two"
    subprocess.run(_cli_train(single, train_dir, steps), check=True, env=_env(), timeout=300)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sreval"]
    # Own process group: if it hangs, the timeout must kill the worker processes too, not just torchrun.
    proc = subprocess.Popen(torchrun + _cli_train(double, train_dir, steps)[3:], env=_env(), start_new_session=True)
    try:
        assert proc.wait(timeout=300) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    a = safetensors.torch.load_file(str(single / "final" / "generator.safetensors"))
    b = safetensors.torch.load_file(str(double / "final" / "generator.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    moved = sum(
        float(
            (a[k] - safetensors.torch.load_file(str(checkpoint_dirs(single)[0] / "generator.safetensors"))[k])
            .abs()
            .sum()
        )
        for k in a
    )
    assert moved > 0  # the weights changed between the checkpoint at step 3 and the end


# --- into the zoo --------------------------------------------------------------------------------------------


def test_zoo_add_from_a_finished_run(
    train_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    run = tmp_path / "run"
    train(
        tiny("srresnet-mse", steps=2),
        TrainOptions(out=run, train_dir=train_dir, device=torch.device("cpu"), progress=False),
    )
    assert main(["zoo", "add", str(run), "--name", "my-srresnet"]) == 0
    entry = zoo.get_entry("my-srresnet")
    assert entry.weights.status == "trained" and entry.recipe == "srresnet-mse"
    card = entry.card_path.read_text()
    assert "| steps | 2 " in card and str(train_dir) in card
    model = zoo.load_model("my-srresnet")
    state = safetensors.torch.load_file(str(run / "final" / "generator.safetensors"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])
    assert main(["zoo", "add", str(tmp_path / "nothing"), "--name", "x"]) == 2
    assert "not a finished" in capsys.readouterr().err


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


def test_missing_validation_data_fails_before_training(train_dir: Path, tmp_path: Path) -> None:
    recipe = tiny("srresnet-mse", steps=2, validate_every=1)
    options = TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"),
                           data_root=tmp_path / "nowhere", progress=False)
    with pytest.raises(SrevalError, match="benchmark file\\(s\\) missing"):
        train(recipe, options)
    assert not (tmp_path / "run").exists()


def test_validation_uses_srevals_protocol_on_set5(train_dir: Path, tmp_path: Path, data_root: Path) -> None:
    recipe = tiny("srresnet-mse", steps=2, validate_every=2, validation_sets=["set5"])
    result = train(recipe, TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"),
                                        data_root=data_root, progress=False))
    (row,) = result.validation
    assert row["dataset"] == "set5" and row["n"] == 5 and 5 < row["psnr"] < 40 and 0 < row["ssim"] < 1
    logged = pd.read_csv(tmp_path / "run" / "validation.csv")
    assert list(logged["step"]) == [2] and logged["psnr"].iloc[0] == pytest.approx(row["psnr"])


def test_validation_of_a_model_that_outputs_nan_fails_naming_the_image(
    train_dir: Path, tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BatchNorm running statistics that are NaN leave training (batch statistics) finite, but make every
    evaluation-mode output NaN: validation must say so rather than log a PSNR of the clamped NaNs."""
    from sreval.archs import create_model

    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    torch.manual_seed(0)
    broken = create_model("srresnet", **TINY_G["srresnet"])
    with torch.no_grad():
        broken.body[2].running_mean.fill_(float("nan"))
    zoo.save_model(broken, "nan-bn", "srresnet", TINY_G["srresnet"], description="NaN BatchNorm statistics")
    recipe = tiny("srresnet-mse", steps=1, validate_every=1, validation_sets=["set5"], init_from="nan-bn")
    options = TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"),
                           data_root=data_root, progress=False)
    with pytest.raises(SrevalError, match=r"validation.*set5/baby.*NaN"):
        train(recipe, options)
    assert not (tmp_path / "run" / "validation.csv").is_file() or len(
        pd.read_csv(tmp_path / "run" / "validation.csv")
    ) == 0


# --- damaged files --------------------------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this calls print: what a tampered checkpoint could do if it were loaded without weights_only."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return print, ("UNPICKLED CODE RAN",)


def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "tampered":
        torch.save({"opt_g": _RunsCode()}, path)
    elif how == "keys":
        torch.save({"something": torch.zeros(1)}, path)  # readable, but not what sreval wrote
    else:
        path.write_text("not a checkpoint\n")


@pytest.mark.parametrize(
    ("file", "how"),
    [
        ("optimizers.pt", "truncated"),
        ("optimizers.pt", "tampered"),
        ("optimizers.pt", "keys"),
        ("optimizers.pt", "text"),
        ("generator.safetensors", "truncated"),
        ("generator.safetensors", "text"),
        ("state.json", "truncated"),
    ],
)
def test_resuming_from_a_damaged_checkpoint_names_the_file_and_what_to_do(
    train_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str, how: str
) -> None:
    recipe = tiny("srresnet-mse", steps=4, checkpoint_every=1)
    options = TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"), progress=False,
                           stop_after=2)
    train(recipe, options)
    _older, newest = checkpoint_dirs(tmp_path / "run")
    path = newest / file
    _damage(path, how)
    with pytest.raises(SrevalError) as error:
        train(recipe, options)
    message = str(error.value)
    assert str(path) in message and "damaged" in message and "weights_only" not in message
    assert f"delete {newest}" in message and "older checkpoint" in message
    assert "UNPICKLED CODE RAN" not in capsys.readouterr().out  # still loaded with weights_only=True
    shutil.rmtree(newest)  # what the message says to do: resume from the older checkpoint
    assert train(recipe, TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"),
                                      progress=False)).step == 4


@pytest.mark.parametrize("content", ["text", "pth", "truncated"])
def test_zoo_add_refuses_weights_that_are_not_safetensors(
    train_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    run = tmp_path / "run"
    train(tiny("srresnet-mse", steps=1), TrainOptions(out=run, train_dir=train_dir, device=torch.device("cpu"),
                                                       progress=False))
    weights = run / "final" / "generator.safetensors"
    if content == "text":
        weights.write_text("these are not weights\n")
    elif content == "pth":
        state = safetensors.torch.load(weights.read_bytes())  # from memory: load_file maps the file it overwrites
        torch.save(state, weights)  # a torch pickle under the safetensors name
    else:
        _damage(weights, "truncated")
    assert main(["zoo", "add", str(run), "--name", "mine"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(weights) in err and "not a valid safetensors file" in err
    assert not (tmp_path / "zoo" / "mine").exists()


def test_zoo_add_of_a_file_instead_of_a_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    model = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(1)}, model)
    assert main(["zoo", "add", str(model), "--name", "mine"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert f"{model} is a file" in err and "run folder" in err

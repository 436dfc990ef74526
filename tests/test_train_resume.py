"""`sreval train` runs that stop and go on: checkpoints, resume after a kill or SIGTERM, damaged checkpoint
files, and multi-process (gloo) runs that equal one process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch

from sreval.errors import SrevalError
from sreval.train.checkpoints import checkpoint_dirs
from sreval.train.loop import TrainOptions, train
from tests.train_helpers import cli_env, cli_train, damage, make_train_dir, tiny


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_train_dir(tmp_path_factory.mktemp("train"))


# --- checkpoints, kill and resume -----------------------------------------------------------------------------


def test_kill_and_resume_continue_the_same_run(train_dir: Path, tmp_path: Path) -> None:
    # Long enough that the run cannot reach its end between the poll that sees step 6 and the kill (tiny steps
    # take a few ms each here).
    steps = 48
    reference = tmp_path / "reference"
    subprocess.run(cli_train(reference, train_dir, steps), check=True, env=cli_env(), timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli_train(killed, train_dir, steps, ["--set", "log_every=1"]), env=cli_env())
    deadline = time.monotonic() + 240
    while not any(p.name >= "step_00000006" for p in checkpoint_dirs(killed)):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = checkpoint_dirs(killed)[-1]
    assert done.name < f"step_{steps:08d}" and not (killed / "final").exists()
    subprocess.run(cli_train(killed, train_dir, steps), check=True, env=cli_env(), timeout=300)

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
        cli_train(out, train_dir, 10_000, ["--set", "checkpoint_every=0"]),
        env=cli_env(),
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
    subprocess.run(cli_train(single, train_dir, steps), check=True, env=cli_env(), timeout=300)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "sreval"]
    # Own process group: if it hangs, the timeout must kill the worker processes too, not just torchrun.
    proc = subprocess.Popen(torchrun + cli_train(double, train_dir, steps)[3:], env=cli_env(), start_new_session=True)
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


# --- damaged files --------------------------------------------------------------------------------------------


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
    damage(path, how)
    with pytest.raises(SrevalError) as error:
        train(recipe, options)
    message = str(error.value)
    assert str(path) in message and "damaged" in message and "weights_only" not in message
    assert f"delete {newest}" in message and "older checkpoint" in message
    assert "UNPICKLED CODE RAN" not in capsys.readouterr().out  # still loaded with weights_only=True
    shutil.rmtree(newest)  # what the message says to do: resume from the older checkpoint
    assert train(recipe, TrainOptions(out=tmp_path / "run", train_dir=train_dir, device=torch.device("cpu"),
                                      progress=False)).step == 4

"""A finished `sreval train` run into the zoo (`sreval zoo add`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch

from sreval import zoo
from sreval.cli import main
from sreval.train.loop import TrainOptions, train
from tests.train_helpers import damage, make_train_dir, tiny


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_train_dir(tmp_path_factory.mktemp("train"))


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
        damage(weights, "truncated")
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

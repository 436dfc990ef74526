"""`sreval zoo` and `sreval interpolate`: listing and showing zoo entries, blending two of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sreval import assets
from sreval.cli import main
from tests.cli_helpers import error_of
from tests.http_server import allow_downloads, serve


@pytest.fixture
def zoo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user zoo (SREVAL_ZOO) holding two tiny SRResNets `a` and `b`; the built-in entries stay visible."""
    import torch

    from sreval import zoo
    from sreval.archs import create_model

    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for seed, name in enumerate("ab"):
        torch.manual_seed(seed)
        zoo.save_model(create_model("srresnet", num_blocks=1, num_feat=8), name, "srresnet",
                       {"num_blocks": 1, "num_feat": 8}, description=f"tiny {name}")
    return tmp_path / "zoo"


def test_zoo_list_shows_every_entry_with_its_status(zoo_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip() and ":" not in line}
    expected = {"srresnet-mse": "not-trained", "srgan-vgg54": "not-obtainable", "esrgan-psnr": "not-trained",
                "esrgan": "not-obtainable", "enhancenet-pat-official": "external", "esrgan-official": "external",
                "esrgan-psnr-official": "external", "a": "trained", "b": "trained"}
    assert {name: cols[3] for name, cols in lines.items()} == expected
    assert lines["srresnet-mse"][1:3] == ["srresnet", "1.55M"] and lines["esrgan"][1:3] == ["rrdbnet", "16.70M"]
    assert out.splitlines()[0].split() == ["name", "architecture", "params", "status", "recipe", "description"]
    assert f"searched: {zoo_env}" in out
    assert main(["zoo"]) == 0 and capsys.readouterr().out == out  # `sreval zoo` alone lists too


def test_zoo_show(zoo_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zoo", "show", "srgan-vgg54"]) == 0
    out = capsys.readouterr().out
    assert "status: not-obtainable" in out and "weights: none (not-obtainable): its loss needs VGG19" in out
    assert "# srgan-vgg54" in out and "Not measured — no weights" in out
    assert main(["zoo", "show", "a"]) == 0
    out = capsys.readouterr().out
    assert "sha256 ok" in out and "tensors: " in out and "# a" in out
    assert "unknown zoo model 'nope'; known: a, b, enhancenet-pat-official" in error_of(["zoo", "show", "nope"], capsys)


def test_zoo_list_reports_an_invalid_entry_and_lists_the_rest(
    zoo_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = zoo_env / "b" / "config.yaml"
    config.write_text(config.read_text() + "colour: red\n")
    code = main(["zoo", "list"])
    captured = capsys.readouterr()
    assert code == 2 and "unknown key 'colour'" in captured.err and str(config) in captured.err
    assert "srresnet-mse" in captured.out and "\na " in captured.out


def test_interpolate_one_alpha_and_a_sweep(zoo_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sreval import zoo

    assert main(["interpolate", "a", "b", "--alpha", "0.8", "--name", "c"]) == 0
    assert f"wrote zoo model c (α = 0.8) to {zoo_env / 'c'}" in capsys.readouterr().out
    assert zoo.get_entry("c").interpolation == zoo.Interpolation("a", "b", 0.8)
    other = tmp_path / "elsewhere"
    assert main(["interpolate", "a", "b", "--sweep", "0,0.5,1", "--name-prefix", "s", "--zoo", str(other)]) == 0
    assert "wrote 3 zoo models" in capsys.readouterr().out
    assert sorted(p.name for p in other.iterdir()) == ["s-a0", "s-a0.5", "s-a1"]
    assert main(["zoo", "show", "s-a0.5", "--zoo", str(other)]) == 0
    assert "sha256 ok" in capsys.readouterr().out
    assert "'c' already exists" in error_of(["interpolate", "a", "b", "--alpha", "0.3", "--name", "c"], capsys)
    assert main(["interpolate", "a", "b", "--alpha", "0.3", "--name", "c", "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a", "esrgan-psnr", "--alpha", "0.5", "--name", "c"], "architecture: srresnet vs rrdbnet"),
        (["esrgan-psnr", "esrgan", "--alpha", "0.8", "--name", "c"], "'esrgan-psnr' has no weights (not-trained)"),
        (["a", "b", "--alpha", "1.5", "--name", "c"], "alpha must be a number in [0, 1], got 1.5"),
        (["a", "b", "--alpha", "0.5"], "--alpha needs --name"),
        (["a", "b", "--sweep", "0,x", "--name-prefix", "p"], "--sweep expects comma-separated numbers"),
        (["a", "nope", "--alpha", "0.5", "--name", "c"], "unknown zoo model 'nope'"),
    ],
)
def test_interpolate_errors(zoo_env: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert message in error_of(["interpolate", *args], capsys)
    assert not (zoo_env / "c").exists()


def test_zoo_show_reports_a_missing_external_file_without_downloading_it(
    zoo_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    allow_downloads(monkeypatch)
    with serve(tmp_path / "served") as server:
        asset = dataclasses.replace(assets.ASSETS["esrgan-official"], urls=(server.put("/x.pth", b"x"),))
        monkeypatch.setitem(assets.ASSETS, "esrgan-official", asset)
        assert main(["zoo", "show", "esrgan-official"]) == 0
        assert "asset esrgan-official not available" in capsys.readouterr().out
        assert server.requests == []

"""Asset resolution: explicit path, SREVAL_ASSETS, sreval's cache, standard locations; checksums; `sreval assets`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sreval import assets
from sreval.cli import main
from sreval.errors import ParameterError, SrevalError

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture
def niqe_file(data_root: Path) -> Path:
    path = data_root.parent / "iqa" / "niqe" / "modelparameters.mat"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


def test_missing_asset_names_the_file_and_where_to_put_it(isolated: Path) -> None:
    with pytest.raises(assets.AssetMissing) as caught:
        assets.resolve("nrqm")
    message = str(caught.value)
    assert "NRQM_model.mat" in message and str(isolated / "cache" / "assets") in message
    assert "sreval assets add nrqm PATH" in message


def test_resolution_order(isolated: Path, niqe_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SREVAL_ASSETS", str(niqe_file.parent.parent))  # DIR/niqe/modelparameters.mat
    assert assets.resolve("niqe") == niqe_file
    installed = assets.add("niqe", niqe_file)
    assert installed == isolated / "cache" / "assets" / "modelparameters.mat"
    assert assets.resolve("niqe") == niqe_file  # SREVAL_ASSETS comes before the cache
    monkeypatch.delenv("SREVAL_ASSETS")
    assert assets.resolve("niqe") == installed
    assert assets.resolve("niqe", explicit=niqe_file) == niqe_file
    with pytest.raises(assets.AssetMissing, match="does not exist"):
        assets.resolve("niqe", explicit=isolated / "nope.mat")


def test_checksum_mismatch_is_an_error_not_a_fallback(isolated: Path, niqe_file: Path) -> None:
    fake = isolated / "fake" / "modelparameters.mat"
    fake.parent.mkdir()
    fake.write_bytes(b"not the LIVE model")
    with pytest.raises(SrevalError, match="is not the niqe asset"):
        assets.resolve("niqe", explicit=fake)
    with pytest.raises(SrevalError, match="not installed"):
        assets.add("niqe", fake)
    assert not (isolated / "cache" / "assets" / "modelparameters.mat").exists()


def test_vgg19_is_found_in_torchvision_cache_and_checked_by_hash_prefix(isolated: Path) -> None:
    """torchvision names checkpoints by the first 8 hex digits of their sha256; a stand-in cannot pass."""
    standin = isolated / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    standin.parent.mkdir(parents=True)
    standin.write_bytes(b"stand-in weights")
    assert hashlib.sha256(standin.read_bytes()).hexdigest()[:8] != "dcbb9e9d"
    assert standin in assets.search_paths(assets.get_asset("vgg19"))
    with pytest.raises(SrevalError, match="expected dcbb9e9d"):
        assets.resolve("vgg19")


def test_unverified_asset_is_used_as_is(isolated: Path) -> None:
    model = isolated / "NRQM_model.mat"
    model.write_bytes(b"whatever the user installed")
    assert assets.checksum_status(assets.get_asset("nrqm"), model) == "unverified"
    assert assets.resolve("nrqm", explicit=model) == model


def test_cli_lists_and_adds(isolated: Path, niqe_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assets"]) == 0
    out = capsys.readouterr().out
    assert "niqe    missing" in out and "nrqm    missing" in out and "looked in:" in out
    assert main(["assets", "add", "niqe", str(niqe_file)]) == 0
    assert "installed niqe" in capsys.readouterr().out
    assert main(["assets"]) == 0
    assert "niqe    ok" in capsys.readouterr().out
    assert main(["assets", "add", "vgg16", str(niqe_file)]) == 2
    assert "unknown asset 'vgg16'" in capsys.readouterr().err


def test_bad_arguments_are_parameter_errors(isolated: Path) -> None:
    with pytest.raises(ParameterError, match="unknown asset 'vgg16'") as error:
        assets.get_asset("vgg16")
    assert error.value.parameter == "name"
    with pytest.raises(ParameterError, match="is not a file") as error:
        assets.add("niqe", isolated / "nothing.mat")
    assert error.value.parameter == "source"

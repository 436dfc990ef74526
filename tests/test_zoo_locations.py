"""Zoo roots and the built-in entries: the order roots are searched in, where new models go, and the entries
that ship with sreval."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from zoo_helpers import TINY, isolated_zoo, save_tiny, tiny

from sreval import zoo
from sreval.errors import SrevalError

BUILTIN = {
    "srresnet-mse": "not-trained",
    "srgan-vgg54": "not-obtainable",
    "esrgan-psnr": "not-trained",
    "esrgan": "not-obtainable",
    "enhancenet-pat-official": "external",
    "esrgan-official": "external",
    "esrgan-psnr-official": "external",
}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolated_zoo(tmp_path, monkeypatch)


# --- Roots ------------------------------------------------------------------------------------------------


def test_roots_order_and_write_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SREVAL_ZOO", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    builtin = zoo.builtin_dir()
    assert builtin is not None and (builtin / "srresnet-mse" / "config.yaml").is_file()
    assert zoo.zoo_roots() == [tmp_path / "xdg" / "sreval" / "zoo", builtin]
    assert zoo.write_root() == tmp_path / "xdg" / "sreval" / "zoo"
    monkeypatch.setenv("SREVAL_ZOO", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    assert zoo.zoo_roots([tmp_path / "x"]) == [tmp_path / "x", tmp_path / "a", tmp_path / "b", builtin]
    assert zoo.write_root() == tmp_path / "a" and zoo.write_root(tmp_path / "x") == tmp_path / "x"


def test_first_root_wins(root: Path, tmp_path: Path) -> None:
    save_tiny("tiny", seed=0)
    other = tmp_path / "other"
    zoo.save_model(tiny(1), "tiny", "srresnet", TINY, root=other, overwrite=True)
    assert zoo.get_entry("tiny", [other, root]).folder == other / "tiny"
    assert zoo.get_entry("tiny").folder == root / "tiny"


# --- The built-in entries ---------------------------------------------------------------------------------


def test_builtin_entries_parse_and_are_all_listed() -> None:
    builtin = zoo.builtin_dir()
    assert builtin is not None
    entries = {e.name: e for e in zoo.list_models([builtin])}
    assert {name: e.weights.status for name, e in entries.items()} == BUILTIN
    for entry in entries.values():
        assert entry.scale == 4 and entry.card_path.is_file() and entry.description
        assert not any(entry.folder.glob("*.safetensors")), "no weights exist yet; none may be committed"
        if entry.weights.status in ("not-trained", "not-obtainable"):
            assert entry.weights.reason
            assert "not measured — no weights" in entry.card_path.read_text().lower()
    assert zoo.count_parameters(entries["srresnet-mse"]) == 1_548_547
    assert zoo.count_parameters(entries["esrgan"]) == 16_697_987
    enet = entries["enhancenet-pat-official"]
    assert enet.weights.asset == "enhancenet-pat" and enet.weights.loader == "enhancenet-pat-tf1"
    assert enet.arch_args["mean"] == [0.47614917, 0.45001204, 0.40904046]


@pytest.mark.parametrize(("name", "reason"), [("srresnet-mse", "none trained yet"), ("esrgan", "VGG19 ImageNet")])
def test_loading_an_entry_without_weights_quotes_its_reason(root: Path, name: str, reason: str) -> None:
    with pytest.raises(SrevalError, match=f"has no weights .*{reason}"):
        zoo.load_model(name)

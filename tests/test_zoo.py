"""Model zoo: config validation, safetensors round trip, every load-time check and external weights, on tiny
models in temporary zoo roots."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
import yaml
from torch import nn
from zoo_helpers import TINY, edit_config, isolated_zoo, save_tiny, tiny, write_raw_entry

from sreval import assets, zoo
from sreval.archs import create_model, registry
from sreval.errors import ParameterError, SrevalError


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolated_zoo(tmp_path, monkeypatch)


# --- Round trip and file format ---------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_outputs(root: Path) -> None:
    model, entry = save_tiny("tiny")
    assert entry.folder == root / "tiny" and entry.weights.status == "trained"
    assert {p.name for p in entry.folder.iterdir()} == {"config.yaml", "model.safetensors", "README.md"}
    loaded = zoo.load_model("tiny")
    assert not loaded.training
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert [e.name for e in zoo.list_models([root])] == ["tiny"]
    card = entry.card_path.read_text()
    assert "# tiny" in card and "srresnet" in card and "Not measured yet" in card


def test_weights_are_safetensors_not_pickle(root: Path) -> None:
    _, entry = save_tiny("tiny")
    assert entry.weights_path is not None
    data = entry.weights_path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    assert data[8:9] == b"{" and 8 + header_len <= len(data)  # safetensors: u64 length + JSON header
    assert data[:1] != b"\x80" and data[:2] != b"PK"  # neither a raw pickle nor torch.save's zip of pickles
    tensors = safetensors.torch.load_file(entry.weights_path)
    assert set(tensors) == set(create_model("srresnet", **TINY).state_dict())
    with safetensors.safe_open(entry.weights_path, framework="pt") as f:
        metadata = f.metadata()
    assert metadata["architecture"] == "srresnet" and metadata["name"] == "tiny"
    assert hashlib.sha256(data).hexdigest() == entry.weights.sha256


def test_config_format_on_disk(root: Path) -> None:
    _, entry = save_tiny("tiny")
    config = yaml.safe_load((entry.folder / "config.yaml").read_text())
    assert config == {
        "name": "tiny", "architecture": "srresnet", "arch_args": TINY, "scale": 4, "recipe": "test",
        "weights": {"status": "trained", "file": "model.safetensors", "sha256": entry.weights.sha256},
        "description": "tiny test model",
    }


def test_name_collision_is_an_error_unless_overwrite(root: Path) -> None:
    save_tiny("tiny", seed=0)
    with pytest.raises(SrevalError, match="'tiny' already exists"):
        save_tiny("tiny", seed=1)
    model = tiny(1)
    zoo.save_model(model, "tiny", "srresnet", TINY, overwrite=True)
    assert torch.equal(zoo.load_state_dict("tiny")["tail.weight"], model.state_dict()["tail.weight"])


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 101, "trailing\n"])
def test_bad_names_are_rejected(root: Path, name: str) -> None:
    with pytest.raises(SrevalError, match="invalid zoo model name"):
        zoo.save_model(tiny(0), name, "srresnet", TINY)
    with pytest.raises(SrevalError, match="invalid zoo model name"):
        zoo.get_entry(name)


def test_saving_a_module_that_does_not_fit_its_architecture(root: Path) -> None:
    with pytest.raises(SrevalError, match=r"missing keys: .*unexpected keys: "):
        zoo.save_model(create_model("rrdbnet", num_block=1, num_feat=8, num_grow_ch=4), "x", "srresnet", TINY)
    assert not (root / "x" / "config.yaml").exists()


# --- Load-time checks -------------------------------------------------------------------------------------


def test_shape_mismatch_names_key_and_both_shapes(root: Path) -> None:
    state = create_model("srresnet", **TINY).state_dict()
    state["head.0.weight"] = torch.zeros(8, 3, 3, 3)
    write_raw_entry(root, "bad", dict(state), TINY)
    with pytest.raises(SrevalError) as error:
        zoo.load_model("bad")
    assert "head.0.weight: expected (8, 3, 9, 9), file has (8, 3, 3, 3)" in str(error.value)
    assert "missing keys" not in str(error.value)


def test_missing_and_unexpected_keys_are_named(root: Path) -> None:
    state = dict(create_model("srresnet", **TINY).state_dict())
    del state["tail.bias"]
    state["extra.weight"] = torch.zeros(1)
    write_raw_entry(root, "bad", state, TINY)
    with pytest.raises(SrevalError, match=r"missing keys: tail\.bias; unexpected keys: extra\.weight"):
        zoo.load_model("bad")


def test_a_wholly_wrong_file_lists_a_bounded_number_of_keys(root: Path) -> None:
    write_raw_entry(root, "bad", dict(create_model("srresnet", num_blocks=3, num_feat=8).state_dict()), TINY)
    with pytest.raises(SrevalError, match=r"unexpected keys: .* and \d+ more"):
        zoo.load_model("bad")


def test_config_architecture_differing_from_the_file(root: Path) -> None:
    _, entry = save_tiny("tiny")
    edit_config(entry.folder, architecture="enhancenet")
    with pytest.raises(SrevalError, match=r"saved from architecture 'srresnet'.*says 'enhancenet'"):
        zoo.load_model("tiny")
    edit_config(entry.folder, architecture="srresnet", arch_args={"num_blocks": 2, "num_feat": 8})
    with pytest.raises(SrevalError, match="saved with arch_args"):
        zoo.load_model("tiny")


def test_tampered_file_fails_the_checksum(root: Path) -> None:
    _, entry = save_tiny("tiny")
    assert entry.weights_path is not None and zoo.checksum_status(entry) == "ok"
    data = bytearray(entry.weights_path.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    entry.weights_path.write_bytes(bytes(data))
    assert zoo.checksum_status(entry) == "mismatch"
    with pytest.raises(SrevalError, match=f"has sha256 .* says {entry.weights.sha256}"):
        zoo.load_model("tiny")
    entry.weights_path.unlink()
    assert zoo.checksum_status(entry) == "missing"
    with pytest.raises(SrevalError, match=r"model\.safetensors is missing"):
        zoo.load_model("tiny")


def test_pickle_in_place_of_safetensors_is_rejected(root: Path) -> None:
    _, entry = save_tiny("tiny")
    assert entry.weights_path is not None
    torch.save(create_model("srresnet", **TINY).state_dict(), entry.weights_path)
    edit_config(entry.folder, weights={"status": "trained", "file": "model.safetensors",
                                       "sha256": hashlib.sha256(entry.weights_path.read_bytes()).hexdigest()})
    with pytest.raises(SrevalError, match=r"is not a (valid )?safetensors file"):
        zoo.load_model("tiny")


# --- Config validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"weights": {"status": "trained", "file": "model.safetensors", "sha256": "0" * 64, "url": "x"}},
         "weights.url is not allowed with status trained"),
        ({"weights": {"status": "not-trained"}}, "weights.reason is required with status not-trained"),
        ({"weights": {"status": "lost", "reason": "x"}}, "weights.status must be one of trained, not-trained"),
        ({"weights": {"status": "trained", "file": "../x.safetensors", "sha256": "0" * 64}}, "a file name inside"),
        ({"architecture": "unet"}, "unknown architecture 'unet'; known: "),
        ({"name": "other"}, "differs from its folder's name"),
        ({"scale": 2}, "scale 2 differs from arch_args.scale 4"),
        ({"scale": "4"}, "scale must be int"),
        ({"description": None}, "description is required"),
    ],
)
def test_invalid_config_errors_name_the_key_and_file(root: Path, change: dict[str, Any], message: str) -> None:
    _, entry = save_tiny("tiny")
    edit_config(entry.folder, arch_args={**TINY, "scale": 4}, **change)
    with pytest.raises(SrevalError) as error:
        zoo.get_entry("tiny")
    assert message in str(error.value) and str(entry.folder / "config.yaml") in str(error.value)
    with pytest.raises(SrevalError, match=r"unknown key|not allowed|required|must be|differs|unknown architecture"):
        zoo.list_models([root])
    assert zoo.scan([root])[0] == [] and len(zoo.scan([root])[1]) == 1


def test_arch_args_that_the_factory_rejects(root: Path) -> None:
    _, entry = save_tiny("tiny")
    edit_config(entry.folder, arch_args={**TINY, "depth": 3})
    with pytest.raises(SrevalError, match=r"arch_args do not fit architecture 'srresnet'.*depth"):
        zoo.count_parameters(zoo.get_entry("tiny"))


def test_unknown_name_lists_the_known_ones(root: Path) -> None:
    save_tiny("tiny")
    with pytest.raises(SrevalError, match=r"unknown zoo model 'tinny'; known: .*tiny"):
        zoo.get_entry("tinny")


def test_incomplete_folder_without_config_is_ignored(root: Path) -> None:
    (root / "half-written").mkdir(parents=True)
    (root / "half-written" / "model.safetensors").write_bytes(b"partial")
    assert zoo.scan([root]) == ([], [])


# --- External weights -------------------------------------------------------------------------------------


@pytest.fixture
def external(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, nn.Module]:
    """An external-weights entry: a test asset (a torch-free raw file) and a loader reading it."""
    monkeypatch.setattr(registry, "_LOADERS", {})
    monkeypatch.setitem(assets.ASSETS, "test-ext", assets.Asset("test-ext", "ext.bin", "ext", None, "test", "tests"))
    model = tiny(3)
    source = tmp_path / "ext.bin"
    source.write_bytes(safetensors.torch.save({k: v.contiguous() for k, v in model.state_dict().items()}))
    folder = root / "ext"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "name": "ext", "architecture": "srresnet", "arch_args": TINY, "scale": 4, "recipe": None,
        "weights": {"status": "external", "asset": "test-ext", "loader": "test-loader"}, "description": "external",
    }))
    return source, model


def test_external_entry_without_registered_loader_errors_clearly(external: tuple[Path, nn.Module]) -> None:
    source, _ = external
    with pytest.raises(SrevalError, match="weight loader 'test-loader' is not registered"):
        zoo.load_model("ext", asset_paths={"test-ext": source})


def test_external_entry_loads_through_its_registered_loader(external: tuple[Path, nn.Module]) -> None:
    source, model = external
    seen: list[Path] = []

    def loader(path: Path) -> dict[str, torch.Tensor]:
        seen.append(path)
        return safetensors.torch.load_file(path)

    registry.register_weight_loader("test-loader", loader)
    loaded = zoo.load_model("ext", asset_paths={"test-ext": source})
    assert seen == [source]
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(SrevalError, match="already registered"):
        registry.register_weight_loader("test-loader", lambda p: {})
    with pytest.raises(SrevalError, match=r"ext\.bin .*not found"):
        zoo.load_model("ext")  # no explicit path and nothing in SREVAL_ASSETS / the cache


# --- Bad arguments ----------------------------------------------------------------------------------------


def test_bad_arguments_are_parameter_errors_naming_the_parameter(root: Path) -> None:
    save_tiny("a")
    calls: list[tuple[Any, str]] = [
        (lambda: zoo.get_entry("../x"), "name"),
        (lambda: zoo.get_entry("nothing-here"), "name"),
        (lambda: zoo.save_model(tiny(0), "a", "srresnet", TINY), "name"),
        (lambda: zoo.save_model(tiny(0), "t", "srresnet", {**TINY, "x": object()}), "arch_args"),
        (lambda: zoo.interpolate("a", "a", 2.0, "c"), "alpha"),
        (lambda: zoo.alpha_sweep("a", "a", [], "p"), "alphas"),
        (lambda: zoo.alpha_sweep("a", "a", [0.5, 0.5], "p"), "alphas"),
        (lambda: zoo.alpha_sweep("a", "a", [0.5], "../p"), "prefix"),
    ]
    for call, parameter in calls:
        with pytest.raises(ParameterError) as error:
            call()
        assert error.value.parameter == parameter and "--" not in str(error.value), str(error.value)

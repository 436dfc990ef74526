"""The official ESRGAN files' reader and zoo entries, on stand-in files (random weights in the authors' layouts,
saved from independent implementations of their network): the real files cannot reach the test machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from esrgan_standins import (
    SMALL,
    SMALL_ARGS,
    OriginalRRDBNet,
    SequentialRRDBNet,
    external_entry,
    original,
    pin_standin,
    save_standin,
)
from zoo_helpers import isolated_zoo

from sreval import assets, zoo
from sreval.archs import weight_loader
from sreval.archs.esrgan_official import (
    ESRGANCheckpointError,
    detect_layout,
    load_official_rrdbnet,
    load_official_state_dict,
)
from sreval.errors import SrevalError

FULL_PARAMETERS = 16_697_987  # RRDBNet ×4, 23 blocks, 64 features, growth 32: the released files' size
FULL_TENSORS = 23 * 3 * 5 * 2 + 6 * 2  # 5 convs per RDB, 3 RDBs per block, 6 other convs; weight + bias each


def _input() -> torch.Tensor:
    torch.manual_seed(99)
    return torch.rand(1, 3, 11, 9)  # odd sizes: no hidden assumption of even tiles


@pytest.mark.parametrize(("layout", "legacy"), [("esrgan", False), ("sequential", False), ("sequential", True)])
def test_authors_layouts_give_the_authors_forward(tmp_path: Path, layout: str, legacy: bool) -> None:
    path = tmp_path / "RRDB.pth"
    net = save_standin(path, layout, seed=1, legacy=legacy)
    assert path.read_bytes().startswith(b"\x80" if legacy else b"PK")
    state, args, found = load_official_state_dict(path)
    assert found == layout and args == {"scale": 4, **SMALL_ARGS}
    ours = load_official_rrdbnet(path)
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), net(x), rtol=0, atol=1e-6)
    # renaming only: every tensor of the file is in the result, bit for bit
    assert sorted(t.sum().item() for t in state.values()) == sorted(t.sum().item() for t in net.state_dict().values())


def test_sequential_layout_keys_are_those_of_the_conversion_script() -> None:
    keys = set(SequentialRRDBNet(nb=2, nf=4, gc=2).state_dict())
    assert {
        "model.0.weight",
        "model.1.sub.0.RDB1.conv1.0.weight",
        "model.1.sub.1.RDB3.conv5.0.bias",
        "model.1.sub.2.weight",
        "model.3.weight",
        "model.6.bias",
        "model.8.weight",
        "model.10.bias",
    } <= keys
    assert detect_layout(keys) == "sequential"


@pytest.mark.parametrize("wrapper", [None, "params", "params_ema", "both", "module"])
def test_basicsr_layout_bare_or_wrapped(tmp_path: Path, wrapper: str | None) -> None:
    net = original("esrgan", seed=2)
    ours = load_official_rrdbnet(_saved(tmp_path / "orig.pth", net.state_dict()))
    basicsr = ours.state_dict()  # BasicSR's names are sreval's
    other = {k: torch.randn_like(v) for k, v in basicsr.items()}
    saved: object = {
        None: basicsr,
        "params": {"params": basicsr},
        "params_ema": {"params_ema": basicsr},
        "both": {"params": other, "params_ema": basicsr},  # the averaged weights are the ones to test with
        "module": {f"module.{k}": v for k, v in basicsr.items()},  # saved from DataParallel
    }[wrapper]
    path = _saved(tmp_path / "basicsr.pth", saved)
    assert load_official_state_dict(path)[2] == "basicsr"
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(load_official_rrdbnet(path)(x), net(x), rtol=0, atol=1e-6)


def _saved(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("cls", [OriginalRRDBNet, SequentialRRDBNet])
def test_full_size_files_map_completely(tmp_path: Path, cls: type[torch.nn.Module]) -> None:
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in cls(nb=23).state_dict().items()}
    assert len(shapes) == FULL_TENSORS
    path = _saved(tmp_path / "full.pth", {k: torch.zeros(s) for k, s in shapes.items()})  # no forward: too slow
    state, args, _ = load_official_state_dict(path)
    assert args == {"scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32}
    assert len(state) == FULL_TENSORS and sum(t.numel() for t in state.values()) == FULL_PARAMETERS


def test_a_pickle_with_other_objects_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.mkdir, (str(marker),))

    state = dict(original("esrgan", seed=3).state_dict())
    path = _saved(tmp_path / "evil.pth", {**state, "extra": Payload()})
    with pytest.raises(
        ESRGANCheckpointError,
        match=r"evil\.pth holds Python objects other than tensors.*"
        r"weights_only=False\), which can run arbitrary code",
    ):
        load_official_state_dict(path)
    assert not marker.exists()


def test_missing_unexpected_and_misshapen_keys_are_named(tmp_path: Path) -> None:
    state = dict(original("esrgan", seed=4).state_dict())
    missing = {k: v for k, v in state.items() if k != "RRDB_trunk.1.RDB3.conv5.bias"}
    with pytest.raises(
        ESRGANCheckpointError,
        match=r"m\.pth: not a complete RRDBNet\(scale=4, num_feat=16, "
        r"num_block=2, num_grow_ch=8\) in the esrgan layout .*missing keys: body\.1\.rdb3\.conv5\.bias$",
    ):
        load_official_state_dict(_saved(tmp_path / "m.pth", missing))
    extra = {**state, "RRDB_trunk.0.RDB4.conv1.weight": torch.zeros(1), "HRconv.running_mean": torch.zeros(1)}
    with pytest.raises(
        ESRGANCheckpointError,
        match=r"u\.pth: unexpected keys for the esrgan layout: "
        r"RRDB_trunk\.0\.RDB4\.conv1\.weight, HRconv\.running_mean$",
    ):
        load_official_state_dict(_saved(tmp_path / "u.pth", extra))
    wrong = {**state, "upconv2.weight": torch.zeros(16, 16, 5, 5)}
    with pytest.raises(
        ESRGANCheckpointError,
        match=r"shape mismatches: conv_up2\.weight: expected \(16, 16, 3, 3\), "
        r"file has \(16, 16, 5, 5\)",
    ):
        load_official_state_dict(_saved(tmp_path / "s.pth", wrong))


def test_files_that_are_no_esrgan_generator(tmp_path: Path) -> None:
    with pytest.raises(ESRGANCheckpointError, match=r"none of the key layouts fits .*keys: features\.0\.weight"):
        load_official_state_dict(_saved(tmp_path / "vgg.pth", {"features.0.weight": torch.zeros(1)}))
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ESRGANCheckpointError, match=r"text\.pth is not a readable PyTorch checkpoint"):
        load_official_state_dict(tmp_path / "text.pth")
    with pytest.raises(ESRGANCheckpointError, match=r"t\.pth does not hold a state dict \(found Tensor\)"):
        load_official_state_dict(_saved(tmp_path / "t.pth", torch.zeros(3)))


# --- The zoo entries ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cited"), [("esrgan-official", "1.978"), ("esrgan-psnr-official", "32.73 / 0.9011")])
def test_builtin_entries(name: str, cited: str, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolated_zoo(isolated, monkeypatch)  # the fixture `isolated` keeps every asset folder out of reach
    entry = zoo.get_entry(name)
    assert entry.weights.status == "external" and entry.weights.asset == name
    assert entry.weights.loader == "esrgan-pth" and weight_loader("esrgan-pth") is not None
    assert entry.architecture == "rrdbnet" and entry.scale == 4 and entry.pipeline == "protocol"
    assert zoo.count_parameters(entry) == FULL_PARAMETERS
    card = entry.card_path.read_text(encoding="utf-8")
    assert "not run by sreval" in card and "Apache License 2.0" in card and cited in card  # the authors' figures
    with pytest.raises(assets.AssetMissing, match=assets.ASSETS[name].filename):
        zoo.load_model(entry)  # nothing installed here, and tests never download


def test_zoo_entry_loads_the_pinned_asset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    standins = tmp_path / "assets"
    net = save_standin(standins / "RRDB_ESRGAN_x4.pth", "esrgan", seed=5)
    pin_standin(monkeypatch, "esrgan-official", standins / "RRDB_ESRGAN_x4.pth")
    monkeypatch.setenv("SREVAL_ASSETS", str(standins))
    external_entry(tmp_path / "zoo", "gan", "esrgan-official")
    model = zoo.load_model("gan", roots=[tmp_path / "zoo"])
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), rtol=0, atol=1e-6)
    save_standin(standins / "RRDB_ESRGAN_x4.pth", "esrgan", seed=6)  # another file under the same name
    with pytest.raises(SrevalError, match="it is not the esrgan-official asset"):
        zoo.load_model("gan", roots=[tmp_path / "zoo"])


def test_entry_whose_arch_args_do_not_fit_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    standins = tmp_path / "assets"
    save_standin(standins / "RRDB_PSNR_x4.pth", "sequential", seed=7, nb=SMALL["nb"] + 1)
    pin_standin(monkeypatch, "esrgan-psnr-official", standins / "RRDB_PSNR_x4.pth")
    monkeypatch.setenv("SREVAL_ASSETS", str(standins))
    external_entry(tmp_path / "zoo", "psnr", "esrgan-psnr-official")
    with pytest.raises(SrevalError, match=r"do not fit zoo model 'psnr'.*unexpected keys: body\.2\.rdb1\.conv1"):
        zoo.load_model("psnr", roots=[tmp_path / "zoo"])

"""Network interpolation (ESRGAN eq. 4) between tiny zoo models: end points, mean, counters, sweeps and every
check made before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from zoo_helpers import TINY, isolated_zoo, save_tiny

from sreval import zoo
from sreval.archs import create_model
from sreval.cli import main
from sreval.errors import SrevalError


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolated_zoo(tmp_path, monkeypatch)


# --- Network interpolation --------------------------------------------------------------------------------


@pytest.fixture
def pair(root: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    a, _ = save_tiny("a", seed=0)
    b, _ = save_tiny("b", seed=1)
    b.train()(torch.rand(2, 3, 8, 8))  # b's BN counters now differ from a's
    zoo.save_model(b, "b", "srresnet", TINY, overwrite=True)
    return a.state_dict(), b.state_dict()


def test_interpolation_end_points_and_mean(
    root: Path, pair: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]
) -> None:
    sa, sb = pair
    for alpha, name in ((0.0, "c0"), (1.0, "c1"), (0.5, "half")):
        zoo.interpolate("a", "b", alpha, name)
    at0, at1, half = (zoo.load_state_dict(n) for n in ("c0", "c1", "half"))
    counters = [k for k, v in sa.items() if not v.is_floating_point()]
    assert counters and all(not torch.equal(sa[k], sb[k]) for k in counters)
    for key in sa:
        assert torch.equal(at0[key], sa[key]), key
        if key in counters:
            assert torch.equal(at1[key], sa[key]) and torch.equal(half[key], sa[key]), key  # counters are A's
        else:
            assert torch.equal(at1[key], sb[key]), key
            torch.testing.assert_close(half[key], (sa[key] + sb[key]) / 2, rtol=0, atol=1e-7)
    entry = zoo.get_entry("half")
    assert entry.interpolation == zoo.Interpolation("a", "b", 0.5) and entry.recipe is None
    card = entry.card_path.read_text()
    assert "α = 0.5" in card and "`a`" in card and "`b`" in card
    zoo.load_model("half")  # a normal, loadable zoo model


def test_interpolation_needs_the_same_architecture(root: Path) -> None:
    save_tiny("a")
    save_tiny("wide", num_feat=4)
    zoo.save_model(create_model("rrdbnet", num_block=1, num_feat=8, num_grow_ch=4), "r", "rrdbnet",
                   {"num_block": 1, "num_feat": 8, "num_grow_ch": 4})
    with pytest.raises(SrevalError, match=r"must be identical, but arch_args\.num_feat: 8 vs 4"):
        zoo.interpolate("a", "wide", 0.5, "c")
    with pytest.raises(SrevalError, match="architecture: srresnet vs rrdbnet"):
        zoo.interpolate("a", "r", 0.5, "c")
    assert not (root / "c").exists()


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_is_an_error(
    pair: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], alpha: float
) -> None:
    with pytest.raises(SrevalError, match=r"alpha must be a number in \[0, 1\]"):
        zoo.interpolate("a", "b", alpha, "c")


def test_interpolation_needs_weights(root: Path) -> None:
    with pytest.raises(SrevalError, match="'esrgan-psnr' has no weights"):
        zoo.interpolate("esrgan-psnr", "esrgan", 0.8, "esrgan-interp")


def test_alpha_sweep(root: Path, pair: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]) -> None:
    alphas = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    names = zoo.alpha_sweep("a", "b", alphas, "ab")
    assert names == ["ab-a0", "ab-a0.2", "ab-a0.4", "ab-a0.6", "ab-a0.8", "ab-a1"]
    assert [zoo.get_entry(n).interpolation.alpha for n in names] == alphas  # type: ignore[union-attr]
    sa, _ = pair
    distances = [float((zoo.load_state_dict(n)["tail.weight"] - sa["tail.weight"]).norm()) for n in names]
    assert distances == sorted(distances) and distances[0] == 0
    with pytest.raises(SrevalError, match="'ab-a0' already exists"):
        zoo.alpha_sweep("a", "b", [0.0], "ab")
    with pytest.raises(SrevalError, match="duplicate names"):
        zoo.alpha_sweep("a", "b", [0.5, 0.5], "dup")
    with pytest.raises(SrevalError, match="alpha must be"):
        zoo.alpha_sweep("a", "b", [0.5, 2.0], "bad")
    assert not (root / "bad-a0.5").exists()  # checked before anything is written


def test_cli_sweep_without_a_prefix_names_models_after_both_ends(
    root: Path, pair: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["interpolate", "a", "b", "--sweep", "0,0.5"]) == 0
    assert f"wrote 2 zoo models to {root}: a-to-b-a0, a-to-b-a0.5" in capsys.readouterr().out
    assert zoo.get_entry("a-to-b-a0.5").interpolation == zoo.Interpolation("a", "b", 0.5)

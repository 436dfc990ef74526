"""Zoo models as benchmark methods, through the real CLI, real files and a real database."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sreval import zoo
from sreval.archs import create_model
from sreval.benchmark.evaluate import method_input
from sreval.cli import main
from sreval.datasets.registry import get_dataset, load_hr
from sreval.errors import SrevalError
from sreval.inference import InferenceOptions
from sreval.matlab.rounding import quantise_im2uint8
from sreval.methods.network import NetworkMethod, ZooMethod
from sreval.methods.specs import create_method, parse_methods
from sreval.protocol import Protocol
from sreval.results import open_store

TINY = {"num_blocks": 1, "num_feat": 8}
#: EnhanceNet paper (Sajjadi et al., ICCV 2017), Table 1, ENet-PAT ×4 PSNR on Set5.
PAPER_ENET_PAT_SET5_PSNR = 28.56


@pytest.fixture
def env(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """conftest's `env`, and no assets folder from outside the test."""
    monkeypatch.delenv("SREVAL_ASSETS", raising=False)
    return env


def _save_tiny(name: str = "tiny-sr") -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("srresnet", **TINY)
    zoo.save_model(model, name, "srresnet", TINY, scale=4, recipe="test", description="tiny random test model")
    return model.eval()


def test_zoo_model_output_is_the_network_on_the_protocol_lr(env: Path, data_root: Path) -> None:
    model = _save_tiny()
    method = create_method("tiny-sr", options=InferenceOptions(tile=32, overlap=8, batch=3))
    assert isinstance(method, ZooMethod)
    dataset = get_dataset("set5")
    entry = dataset.images[0]
    item = method_input(dataset, entry, load_hr(entry, data_root), Protocol())
    sr = method.super_resolve(item)
    assert sr.dtype == np.uint8 and sr.shape == item.hr.pixels.shape
    with torch.inference_mode():
        direct = quantise_im2uint8(model(item.lr.float() / 255))[0].permute(1, 2, 0).numpy()
    # tiled vs whole image: equal up to float rounding, i.e. at most a rare ±1 at a rounding tie
    diff = np.abs(sr.astype(int) - direct.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    meta = method.metadata()
    assert meta["pipeline"] == "protocol" and "MATLAB bicubic" in meta["lr"]
    assert meta["weights_sha256"] == zoo.get_entry("tiny-sr").weights.sha256


def test_identity_changes_with_weights_and_precision(env: Path) -> None:
    _save_tiny("a")
    torch.manual_seed(1)
    zoo.save_model(create_model("srresnet", **TINY), "b", "srresnet", TINY, description="other weights")
    a, b = parse_methods(["a", "b"])
    assert a.identity() != b.identity()
    assert create_method("a").identity() == a.identity()
    assert create_method("a", options=InferenceOptions(tile=64)).identity() == a.identity()  # float rounding only
    assert create_method("a", options=InferenceOptions(precision="bf16")).identity() != a.identity()


def test_run_benchmarks_with_a_zoo_model(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _save_tiny()
    out = env / "out"
    args = ["run-benchmarks", "--methods", "tiny-sr,bicubic", "--datasets", "set5", "--out", str(out), "-q",
            "--tile", "48", "--batch", "2"]
    assert main(args) == 0
    assert "SR images: 10 computed" in capsys.readouterr().out
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["method"]) == {"tiny-sr", "bicubic"}
    assert (summary.query("method == 'tiny-sr'")["n"] == 5).all()
    assert main(args) == 0
    assert "SR images: 0 computed, 10 from cache" in capsys.readouterr().out


def test_models_without_weights_and_unknown_names(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SrevalError, match=r"srresnet-mse.*no weights \(not-trained\)"):
        create_method("srresnet-mse")
    with pytest.raises(SrevalError, match=r"srgan-vgg54.*not-obtainable.*VGG19"):
        create_method("srgan-vgg54")
    with pytest.raises(SrevalError, match=r"available: .*enhancenet-pat-official-matlab-lr.*srresnet-mse"):
        create_method("no-such-model")
    with pytest.raises(SrevalError, match="unknown method"):
        create_method("srresnet-mse-matlab-lr")  # only entries with their own pipeline have a -matlab-lr twin
    assert main(["run-benchmarks", "--methods", "esrgan-psnr", "--datasets", "set5", "--out", str(env / "o")]) == 2
    assert "esrgan-psnr" in capsys.readouterr().err


def test_missing_external_weights_fail_before_any_work(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run-benchmarks", "--methods", "bicubic,enhancenet-pat-official", "--datasets", "set5",
            "--out", str(env / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "weights" in err and "sreval assets add enhancenet-pat" in err
    assert not (env / "out").exists()


def test_enhancenet_pat_official_reproduces_the_paper_on_set5(
    env: Path, enhancenet_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = env / "out"
    args = ["run-benchmarks", "--methods", "enhancenet-pat-official,enhancenet-pat-official-matlab-lr",
            "--datasets", "set5", "--out", str(out), "-q", "--asset", f"enhancenet-pat={enhancenet_weights}"]
    assert main(args) == 0
    summary = pd.read_csv(out / "summary.csv").set_index(["method", "metric"])["mean"]
    # The authors' own pipeline gives the paper's figure; tolerance = the paper's rounding plus float noise.
    assert summary[("enhancenet-pat-official", "psnr")] == pytest.approx(PAPER_ENET_PAT_SET5_PSNR, abs=0.01)
    # The MATLAB LR is a different (milder) degradation; the same weights score differently on it.
    assert abs(summary[("enhancenet-pat-official-matlab-lr", "psnr")] - PAPER_ENET_PAT_SET5_PSNR) > 0.1
    store = open_store(f"sqlite:///{env / 'results.sqlite'}")
    try:
        run = store.get_run(int(store.list_runs()["id"].iloc[-1]))
    finally:
        store.close()
    methods = {m.name: m.metadata for m in run.methods}
    assert "PIL antialias" in methods["enhancenet-pat-official"]["lr"]
    assert "MATLAB bicubic" in methods["enhancenet-pat-official-matlab-lr"]["lr"]
    assert methods["enhancenet-pat-official"]["weights_sha256"].startswith("4250b3dc")


def test_quantise_im2uint8_rounds_half_away_from_zero() -> None:
    y = torch.tensor([-0.2, 0.5 / 255, 1.5 / 255, 2.5 / 255, 254.49 / 255, 1.2])
    assert quantise_im2uint8(y).tolist() == [0, 1, 2, 3, 254, 255]


# --- a broken model is an error, never a score ------------------------------------------------------------------


def _save_with_tail_bias(name: str, bias: float) -> None:
    """A tiny SRResNet whose last convolution adds `bias` to every output value (NaN, ±inf or a huge number)."""
    torch.manual_seed(0)
    model = create_model("srresnet", **TINY)
    with torch.no_grad():
        tail = model.tail
        assert isinstance(tail, torch.nn.Conv2d) and tail.bias is not None
        tail.bias.fill_(bias)
    zoo.save_model(model, name, "srresnet", TINY, scale=4, recipe="test", description="deliberately broken model")


@pytest.mark.parametrize(
    ("bias", "what"),
    [(float("nan"), "NaN"), (float("inf"), "infinite"), (-float("inf"), "infinite"), (100.0, "far outside")],
)
def test_a_broken_model_is_an_error_and_nothing_is_cached_or_stored(
    env: Path, capsys: pytest.CaptureFixture[str], bias: float, what: str
) -> None:
    _save_with_tail_bias("broken", bias)
    out = env / "out"
    code = main(["run-benchmarks", "--methods", "broken", "--datasets", "set5", "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "broken" in err and "set5/baby" in err and what in err
    assert not list((env / "cache").rglob("*.png"))  # no SR image cached
    assert not (out / "summary.csv").exists() and not (out / "per_image.csv").exists()
    store = open_store(f"sqlite:///{env / 'results.sqlite'}")
    try:
        assert store.list_runs().empty
    finally:
        store.close()


def test_a_model_that_overshoots_is_clamped_as_im2uint8_does(env: Path, data_root: Path) -> None:
    """Overshoot beyond [0, 1] at strong edges is normal for SR networks (the official EnhanceNet-PAT reaches
    about -0.21 and 1.56 on Set5) and is saturated by the protocol's quantisation (MATLAB's im2uint8), not an
    error."""
    _save_with_tail_bias("bright", 0.9)
    method = create_method("bright", options=InferenceOptions(tile=None))
    dataset = get_dataset("set5")
    entry = dataset.images[0]
    item = method_input(dataset, entry, load_hr(entry, data_root), Protocol())
    with torch.inference_mode():
        raw = zoo.load_model("bright")(item.lr.float() / 255)
    assert 1 + 0.5 / 255 < float(raw.max()) < 2
    sr = method.super_resolve(item)
    assert sr.max() == 255 and np.array_equal(sr, quantise_im2uint8(raw)[0].permute(1, 2, 0).numpy())


# --- an in-memory network is the zoo method with the same weights ----------------------------------------------


def test_network_method_gives_the_zoo_methods_pixels_for_the_same_weights(env: Path, data_root: Path) -> None:
    model = _save_tiny()
    options = InferenceOptions(tile=32, overlap=8, batch=3)
    zoo_method = create_method("tiny-sr", options=options)
    in_memory = NetworkMethod(model.train(), "tiny-in-memory", scale=4, options=options)
    dataset = get_dataset("set5")
    for entry in dataset.images[:2]:
        item = method_input(dataset, entry, load_hr(entry, data_root), Protocol())
        assert np.array_equal(in_memory.super_resolve(item), zoo_method.super_resolve(item))
    assert model.training  # handed back in the mode it had
    assert in_memory.metadata()["weights_sha256"] == in_memory.weights_sha256
    assert in_memory.settings() == {"inference": {"tile": 32, "overlap": 8, "batch": 3, "precision": "fp32",
                                                  "channels_last": False, "compile": False}}


def test_run_benchmarks_takes_an_in_memory_network_without_a_store(env: Path, data_root: Path) -> None:
    from sreval.benchmark.cache import Cache
    from sreval.benchmark.runner import run_benchmarks
    from sreval.metrics import create_metric

    model = _save_tiny()
    method = NetworkMethod(model, "tiny-in-memory", scale=4, options=InferenceOptions(tile=128, overlap=16, batch=4))
    result = run_benchmarks(
        [method], [get_dataset("set5")], [create_metric("psnr")], protocol=Protocol(), data_root=data_root,
        cache=Cache(env / "unused-cache", enabled=False), device=torch.device("cpu"), progress=False,
    )
    assert set(result.summary["method"]) == {"tiny-in-memory"} and int(result.summary["n"].iloc[0]) == 5
    assert not (env / "unused-cache").exists()
    assert result.record.methods[0].metadata["inference"]["tile"] == 128


@pytest.mark.parametrize("workers_are", ["threads", "processes"])
def test_a_network_in_training_runs_in_evaluation_mode_on_every_worker_and_is_given_back_training(
    env: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, workers_are: str
) -> None:
    """Worker threads share one module: none may switch it back to training mode while another one runs it.
    Worker processes each have their own copy, which must be in evaluation mode too."""
    from sreval.benchmark import pool
    from sreval.benchmark.cache import Cache
    from sreval.benchmark.runner import run_benchmarks
    from sreval.metrics import create_metric

    if workers_are == "threads":
        monkeypatch.setattr(pool, "fork_blocker", lambda device, store: "threads share the module")
    model = _save_tiny()
    model.train()
    modes = env / "modes.txt"  # one line per forward: the process and the module's mode

    def record(module: torch.nn.Module, args: object, out: object) -> None:
        with modes.open("a") as f:
            f.write(f"{os.getpid()} {module.training}\n")

    model.register_forward_hook(record)
    method = NetworkMethod(model, "tiny-in-memory", scale=4, options=InferenceOptions(tile=32, overlap=8, batch=1))
    datasets = [get_dataset("set5"), get_dataset("set14")]
    run_benchmarks(
        [method], datasets, [create_metric("psnr")], protocol=Protocol(), data_root=data_root,
        cache=Cache(env / "unused-cache", enabled=False), device=torch.device("cpu"), progress=False, workers=4,
    )  # fmt: skip
    lines = [line.split() for line in modes.read_text().splitlines()]
    assert len(lines) > 19 and {training for _, training in lines} == {"False"}
    processes = {int(pid) for pid, _ in lines} - {os.getpid()}
    assert len(processes) == (0 if workers_are == "threads" else 4)
    assert model.training

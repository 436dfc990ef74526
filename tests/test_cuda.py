"""The CUDA paths against the CPU: a benchmark run, the inference engine in fp32 and in the fast GPU settings, and
training with bf16 + channels_last + torch.compile, stopped and resumed.

Only on a machine with a CUDA device (`pytest -m gpu`; `perf/gpu_run.sh` runs them first). Random weights: these
check that the device computes the same function, not what a trained model scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch

from sreval.archs import create_model
from sreval.benchmark.cache import Cache
from sreval.benchmark.runner import run_benchmarks
from sreval.datasets.registry import parse_datasets
from sreval.inference import InferenceOptions, Upscaler
from sreval.methods.baselines import Bicubic, NearestNeighbour
from sreval.metrics import parse_metrics
from sreval.protocol import Protocol
from sreval.train.loop import TrainOptions, train
from tests.train_helpers import make_train_dir, tiny

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    ours, reference = ours.double().cpu(), reference.double().cpu()
    assert torch.isfinite(ours).all()
    return float(torch.linalg.vector_norm(ours - reference) / torch.linalg.vector_norm(reference))


def test_a_benchmark_run_on_cuda_gives_the_cpu_values(data_root: Path, tmp_path: Path) -> None:
    protocol = Protocol()
    values = []
    for device in (CPU, CUDA):
        result = run_benchmarks(
            [Bicubic(), NearestNeighbour()], parse_datasets(["set5"]),
            parse_metrics(["psnr", "ssim", "rmse", "niqe"], protocol), protocol=protocol, data_root=data_root,
            cache=Cache(tmp_path / device.type, enabled=False), device=device, progress=False,
        )  # fmt: skip
        values.append(result.per_image.set_index(["method", "image", "metric"])["value"].sort_index())
    assert len(values[0]) == 2 * 5 * 4
    pd.testing.assert_index_equal(values[0].index, values[1].index)
    np.testing.assert_allclose(values[1].to_numpy(), values[0].to_numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["srresnet", "rrdbnet"])
def test_fp32_inference_on_cuda_is_float32_not_tf32(name: str) -> None:
    """fp32 is the precision published numbers are made with: on CUDA it must not quietly run its convolutions in
    TF32 (10-bit mantissa, ~1e-3 relative error), which torch allows for cuDNN by default."""
    torch.manual_seed(0)
    model = create_model(name, scale=4).eval()
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    options = InferenceOptions(tile=None, precision="fp32")
    on_cpu = Upscaler(model, 4, CPU, options)(x)
    on_gpu = Upscaler(model.to(CUDA), 4, CUDA, options)(x.to(CUDA))
    assert relative_error(on_gpu, on_cpu) < 1e-5


def test_the_fast_gpu_engine_stays_close_to_fp32() -> None:
    """bf16 + channels_last + torch.compile with tiles (what `perf/inference.py` times) against whole-image fp32."""
    torch.manual_seed(0)
    model = create_model("srresnet", scale=4).eval().to(CUDA)
    x = torch.rand(1, 3, 96, 80, generator=torch.Generator().manual_seed(2)).to(CUDA)
    reference = Upscaler(model, 4, CUDA, InferenceOptions(tile=None, precision="fp32"))(x)
    fast = Upscaler(
        model, 4, CUDA, InferenceOptions(tile=48, overlap=16, batch=4, precision="bf16", channels_last=True,
                                         compile=True),
    )  # fmt: skip
    for _ in range(2):  # the second call runs the compiled graph again
        assert relative_error(fast(x), reference) < 2e-2


def test_training_on_cuda_compiled_in_bf16_stops_resumes_and_tracks_fp32(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    train_dir = make_train_dir(tmp_path / "images")
    fast = tiny("srresnet-mse", steps=6, lr=1e-3, precision="bf16", channels_last=True, compile=True)
    options = TrainOptions(out=tmp_path / "fast", train_dir=train_dir, device=CUDA, progress=False, stop_after=3)
    first = train(fast, options)
    assert (first.step, first.finished) == (3, False)
    options.stop_after = None
    second = train(fast, options)
    assert (second.step, second.finished) == (6, True)
    weights = safetensors.torch.load_file(str(tmp_path / "fast" / "final" / "generator.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())

    eager = tiny("srresnet-mse", steps=6, lr=1e-3, precision="fp32", channels_last=False, compile=False)
    train(eager, TrainOptions(out=tmp_path / "eager", train_dir=train_dir, device=CUDA, progress=False))
    logs = [pd.read_csv(tmp_path / name / "train_log.csv")["total"].to_numpy() for name in ("fast", "eager")]
    assert len(logs[0]) == len(logs[1]) == 6  # the resumed run's log continues without a gap or a repeat
    # The same weights and crops: the first step's loss differs only by bf16 rounding.
    assert logs[0][0] == pytest.approx(logs[1][0], rel=2e-2)

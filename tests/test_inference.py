"""Tiled inference (`sreval.inference`): tiles give the whole-image result, out-of-memory fallback, precision, errors.

The reference is always one whole-image fp32 forward of the same tiny model. The overlap each model needs is
measured, not assumed: `receptive_radius` finds how far an output pixel's input dependence reaches by autograd, and
with at least that much context a tiled run must agree to float rounding (1e-5 here, 1e-3 is the promise).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
import torch
from torch import nn

from sreval.archs import create_model
from sreval.errors import SrevalError
from sreval.inference import MIN_TILE, InferenceOptions, Upscaler, _spans

TINY: dict[str, dict[str, Any]] = {
    "srresnet": {"num_blocks": 2, "num_feat": 8},
    "rrdbnet": {"num_block": 1, "num_feat": 8, "num_grow_ch": 4},
    "enhancenet": {"num_blocks": 2, "num_feat": 8},
}
SCALE = 4
SHAPE = (2, 3, 67, 83)  # odd sizes that no tile below divides; two images so tiles of both share batches


def tiny(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, **TINY[name]).eval()


def image(shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    # Smooth structure plus noise, in [0, 1]: a conv net's output then varies over the whole image.
    gen = torch.Generator().manual_seed(1)
    h, w = shape[-2:]
    yy, xx = torch.meshgrid(torch.linspace(0, 3, h), torch.linspace(0, 5, w), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(yy * 2.1 + xx) * torch.cos(xx * 1.3)
    return (base + 0.2 * torch.rand(shape, generator=gen)).clamp(0, 1)


def whole(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out: torch.Tensor = model(x)
    return out


def receptive_radius(model: nn.Module, size: int = 81) -> int:
    """LR pixels from an output block's source pixel to the farthest input pixel it depends on (by autograd)."""
    x = torch.rand(1, 3, size, size, requires_grad=True)
    c = size // 2
    model(x)[:, :, SCALE * c : SCALE * (c + 1), SCALE * c : SCALE * (c + 1)].sum().backward()
    assert x.grad is not None
    reach = (x.grad.abs().sum((0, 1)) > 0).nonzero() - c
    radius = int(reach.abs().max())
    assert radius < c, "the probe image is too small for this model"
    return radius


@pytest.fixture(scope="module")
def radii() -> dict[str, int]:
    return {name: receptive_radius(tiny(name)) for name in TINY}


def upscale(model: nn.Module, x: torch.Tensor, **options: Any) -> tuple[torch.Tensor, int]:
    """Output and the number of windows the engine ran."""
    totals: list[int] = []
    out = Upscaler(model, SCALE, options=InferenceOptions(**options))(
        x, progress=lambda done, total: totals.append(total)
    )
    return out, totals[-1]


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# --- tiles give the whole-image result -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize(
    ("tile", "extra_overlap", "batch", "tiled"),
    [
        (16, 0, 3, True),  # smallest tile, batches that straddle the two images
        (20, 0, 1, True),  # batch 1
        (23, 5, 8, True),  # more context than needed
        (200, 0, 4, False),  # tile larger than the image: one pass per image
        (None, 0, 2, False),  # tiling off
    ],
)
def test_tiled_matches_whole_image(
    name: str, tile: int | None, extra_overlap: int, batch: int, tiled: bool, radii: dict[str, int]
) -> None:
    model, x = tiny(name), image()
    ref = whole(model, x)
    out, windows = upscale(model, x, tile=tile, overlap=radii[name] + extra_overlap, batch=batch)
    assert (windows > SHAPE[0]) == tiled
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert max_error(out, ref) < 1e-5


@pytest.mark.parametrize("name", sorted(TINY))
def test_without_overlap_tiles_show_seams(name: str) -> None:
    # The check above can fail: cutting a conv net's input without context changes the output near every cut.
    model, x = tiny(name), image()
    out, windows = upscale(model, x, tile=16, overlap=0)
    assert windows > SHAPE[0]
    assert max_error(out, whole(model, x)) > 1e-2


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(n, t, o) for n in (1, 15, 16, 47, 48, 49, 100, 257) for t in (16, 17, 31, 64) for o in (0, 1, 7, 16)],
)
def test_windows_cover_the_axis_with_context(length: int, tile: int, overlap: int) -> None:
    window, spans = _spans(length, tile, overlap)
    assert window == min(length, tile + 2 * overlap)
    assert spans[0].own_start == 0 and spans[-1].own_end == length
    for a, b in itertools.pairwise(spans):
        assert a.own_end == b.own_start  # owned ranges partition the axis
    for span in spans:
        assert span.start >= 0 and span.start + window <= length
        assert span.own_start - span.start >= overlap or span.start == 0
        assert span.start + window - span.own_end >= overlap or span.start + window == length


# --- precision and memory layout ---------------------------------------------------------------------------


@pytest.mark.parametrize(("precision", "tolerance"), [("bf16", 3e-2), ("fp16", 1e-2)])
def test_reduced_precision_on_cpu_is_close(precision: str, tolerance: float, radii: dict[str, int]) -> None:
    model, x = tiny("srresnet"), image((1, 3, 45, 57))  # smaller: reduced precision is slow on a CPU
    ref = whole(model, x)
    out, windows = upscale(model, x, tile=16, overlap=radii["srresnet"], precision=precision)
    assert windows > 1
    assert out.dtype == torch.float32
    error = max_error(out, ref)
    assert 0 < error < tolerance  # > 0: autocast did run in reduced precision


def test_channels_last_gives_the_same_result(radii: dict[str, int]) -> None:
    model, x = tiny("rrdbnet"), image()
    out, _ = upscale(model, x, tile=16, overlap=radii["rrdbnet"], channels_last=True)
    assert next(model.parameters()).is_contiguous(memory_format=torch.channels_last)
    assert out.is_contiguous()  # the caller gets NCHW whatever the model used
    assert max_error(out, whole(model, x)) < 1e-5


@pytest.mark.slow
def test_compiled_model_gives_the_same_result(radii: dict[str, int]) -> None:
    model, x = tiny("enhancenet"), image()
    ref = whole(model, x)
    out, _ = upscale(model, x, tile=24, overlap=radii["enhancenet"], compile=True)
    assert max_error(out, ref) < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_tiled_matches_fp32(radii: dict[str, int]) -> None:
    model, x = tiny("srresnet"), image()
    ref = whole(model, x)
    engine = Upscaler(model, SCALE, "cuda", InferenceOptions(tile=24, overlap=radii["srresnet"], precision="bf16"))
    out = engine(x)
    assert out.device.type == "cpu" and out.dtype == torch.float32
    assert max_error(out, ref) < 1e-2
    on_gpu = engine(x.cuda())
    assert on_gpu.device.type == "cuda"
    assert max_error(on_gpu.cpu(), ref) < 1e-2


# --- out of memory ---------------------------------------------------------------------------------------


class OomAbove(nn.Module):
    """Wraps a model and raises torch.OutOfMemoryError, as the CUDA allocator would, for inputs over a pixel budget."""

    def __init__(self, model: nn.Module, max_pixels: int) -> None:
        super().__init__()
        self.model = model
        self.max_pixels = max_pixels
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        if x.shape[0] * x.shape[2] * x.shape[3] > self.max_pixels:
            raise torch.OutOfMemoryError(f"tried to allocate for {tuple(x.shape)}")
        out: torch.Tensor = self.model(x)
        return out


def test_out_of_memory_falls_back_to_smaller_batches_and_tiles(
    caplog: pytest.LogCaptureFixture, radii: dict[str, int]
) -> None:
    model, x = tiny("srresnet"), image()
    ref = whole(model, x)
    overlap = radii["srresnet"]
    # One window of tile 20 fits, 41 (the first halving of 83) does not; tiling starts off (whole images, 2/pass).
    budget = (20 + 2 * overlap) ** 2
    wrapped = OomAbove(model, budget)
    engine = Upscaler(wrapped, SCALE, options=InferenceOptions(tile=None, overlap=overlap, batch=2))
    with caplog.at_level(logging.WARNING, logger="sreval.inference"):
        out = engine(x)
    assert max_error(out, ref) < 1e-5
    assert engine.batch == 1 and engine.tile is not None and engine.tile <= 20
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 tiles per pass" in m for m in messages)
    assert any(f"{engine.tile} px LR tiles" in m for m in messages)
    # The smaller settings are kept: the next call runs without failing first.
    caplog.clear()
    wrapped.calls.clear()
    with caplog.at_level(logging.WARNING, logger="sreval.inference"):
        assert max_error(engine(x), ref) < 1e-5
    assert not caplog.records
    assert all(b * h * w <= budget for b, _, h, w in wrapped.calls)


def test_out_of_memory_at_the_smallest_tile_is_an_error() -> None:
    engine = Upscaler(OomAbove(tiny("srresnet"), 0), SCALE, options=InferenceOptions(tile=64, overlap=4, batch=4))
    with pytest.raises(SrevalError, match=rf"out of memory.*smaller tile \(at least {MIN_TILE}.*smaller model.*CPU"):
        engine(image())


def test_other_errors_are_not_retried() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("not a memory problem")

    with pytest.raises(RuntimeError, match="not a memory problem"):
        Upscaler(Broken(), SCALE)(image())


# --- inputs, outputs and errors -----------------------------------------------------------------------------


def test_single_image_without_batch_dimension(radii: dict[str, int]) -> None:
    model, x = tiny("enhancenet"), image()
    out, _ = upscale(model, x[1], tile=16, overlap=radii["enhancenet"])
    assert out.shape == (3, SCALE * SHAPE[2], SCALE * SHAPE[3])
    assert max_error(out, whole(model, x[1:])[0]) < 1e-5


def test_model_is_put_in_eval_mode_and_output_is_not_clamped() -> None:
    class Affine(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.interpolate(x, scale_factor=SCALE) * 3 - 1  # [0, 1] → [-1, 2]

    model = Affine().train()
    out = Upscaler(model, SCALE, options=InferenceOptions(tile=16, overlap=2))(image())
    assert not model.training
    assert out.min() < 0 and out.max() > 1


def test_progress_reports_every_pass() -> None:
    calls: list[tuple[int, int]] = []
    engine = Upscaler(tiny("enhancenet"), SCALE, options=InferenceOptions(tile=16, overlap=7, batch=5))
    engine(image(), progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert [done for done, _ in calls] == [*range(5, total, 5), total]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (torch.rand(67, 83), r"shape \(67, 83\); expected \(N, C, h, w\) or \(C, h, w\)"),
        (torch.rand(1, 1, 3, 8, 8), r"expected \(N, C, h, w\) or \(C, h, w\)"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), r"dtype torch.uint8; expected a float tensor in \[0, 1\]"),
        (torch.rand(1, 4, 8, 8), "4 channels .* the model takes 3"),
        (torch.rand(0, 3, 8, 8), "empty"),
        (torch.rand(3, 8, 8).numpy(), "expected a torch.Tensor image, got ndarray"),
    ],
)
def test_bad_input_is_a_clear_error(value: Any, message: str) -> None:
    with pytest.raises(SrevalError, match=message):
        Upscaler(tiny("srresnet"), SCALE)(value)


def test_wrong_scale_is_a_clear_error() -> None:
    with pytest.raises(
        SrevalError, match=r"model returned shape \(2, 3, 268, 332\).*expected .*134, 166\) for scale 2"
    ):
        Upscaler(tiny("srresnet"), 2)(image())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tile": MIN_TILE - 1}, f"tile {MIN_TILE - 1} is too small"),
        ({"overlap": -1}, "overlap -1 must be ≥ 0"),
        ({"batch": 0}, "batch 0 must be ≥ 1"),
        ({"precision": "fp64"}, "precision 'fp64' is not supported"),
    ],
)
def test_bad_options_are_clear_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SrevalError, match=message):
        InferenceOptions(**options)

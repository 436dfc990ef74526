"""imresize's strided route and in-place rounding against the gather formulation they replaced, bit for bit.

The reference below is the previous implementation, copied verbatim (contributions, the gather pass, the pass
order and the rounding after each pass), so that any difference in a single bit on adversarial inputs fails here
even where the MATLAB files of `test_imresize.py` happen not to reach: odd and prime sizes, 1-3 px images whose
mirrored border overhangs the image, flat areas, 0/255 extremes that overshoot, both borders and both variants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

import sreval.matlab.imresize as imresize_module
from sreval.matlab.imresize import imresize, imresize_float
from sreval.matlab.rounding import matlab_round, round_clamp_uint8_range_

# --- the previous formulation ----------------------------------------------------------------------------------


def _reference_round(x: torch.Tensor) -> torch.Tensor:
    floor = torch.floor(x)
    return torch.where(x - floor >= 0.5, floor + 1, floor)


def _reference_cubic(x: torch.Tensor) -> torch.Tensor:
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return near + far


def _reference_contributions(
    in_length: int, out_length: int, scale: float, antialiasing: bool, border: str
) -> tuple[torch.Tensor, torch.Tensor]:
    kernel_width = 4.0
    stretch = scale < 1 and antialiasing
    if stretch:
        kernel_width = kernel_width / scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * _reference_cubic(scale * distance) if stretch else _reference_cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    zero_based = indices.long() - 1
    if border == "symmetric":
        period = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
        zero_based = period[torch.remainder(zero_based, 2 * in_length)]
    else:
        zero_based = zero_based.clamp(0, in_length - 1)
    keep = weights.ne(0).any(dim=0)
    return weights[:, keep], zero_based[:, keep]


def _reference_resize_dim(x: torch.Tensor, dim: int, weights: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    rows = x.movedim(dim, -2).contiguous()
    weights = weights.to(x.device)
    indices = indices.to(x.device)
    out = rows.index_select(-2, indices[:, 0]) * weights[:, 0, None]
    for k in range(1, weights.shape[1]):
        out.add_(rows.index_select(-2, indices[:, k]) * weights[:, k, None])
    return out.movedim(-2, dim)


def _reference_passes(
    x: torch.Tensor,
    scale: float | None,
    size: tuple[int, int] | None,
    border: str,
    antialiasing: bool,
    after_each: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    in_h, in_w = x.shape[-2:]
    if size is not None:
        out_h, out_w = size
    else:
        assert scale is not None
        out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
    scale_h = scale if scale is not None else out_h / in_h
    scale_w = scale if scale is not None else out_w / in_w
    passes = [(2, in_h, out_h, scale_h), (3, in_w, out_w, scale_w)]
    passes.sort(key=lambda p: p[3])
    for dim, in_len, out_len, s in passes:
        weights, indices = _reference_contributions(in_len, out_len, s, antialiasing, border)
        x = _reference_resize_dim(x, dim, weights, indices)
        if after_each is not None:
            x = after_each(x)
    return x


def reference_imresize(img: torch.Tensor, scale: float | None = None, **kwargs: Any) -> torch.Tensor:
    size, variant = kwargs.get("size"), kwargs.get("variant", "uint8")
    border, antialiasing = kwargs.get("border", "symmetric"), kwargs.get("antialiasing", True)
    if variant == "uint8":
        x = _reference_passes(
            img.to(torch.float64), scale, size, border, antialiasing, lambda y: _reference_round(y).clamp_(0, 255)
        )
    else:
        x = _reference_passes(img.to(torch.float64) / 255, scale, size, border, antialiasing)
        x = _reference_round(x * 255).clamp_(0, 255)
    return x.to(torch.uint8)


def reference_imresize_float(x: torch.Tensor, scale: float | None = None, **kwargs: Any) -> torch.Tensor:
    size, border, antialiasing = kwargs.get("size"), kwargs.get("border", "symmetric"), kwargs.get("antialiasing", True)
    return _reference_passes(x.to(torch.float64), scale, size, border, antialiasing)


# --- inputs -----------------------------------------------------------------------------------------------------

# 1-px dims, 2-3 px (the ×1/4 kernel's 8-px overhang wraps around them several times), primes, even and odd sizes.
SIZES = [(1, 1), (1, 5), (3, 1), (2, 3), (3, 2), (5, 7), (8, 8), (11, 13), (16, 12), (17, 29), (31, 37), (40, 23)]
SCALES = [1 / 2, 1 / 3, 1 / 4, 2.0, 3.0, 4.0, 0.3, 1.7]


def _uint8_images(height: int, width: int, seed: int) -> list[torch.Tensor]:
    """Random noise, 0/255 checkerboard (maximal overshoot, both clamps), a flat area with one 255 pixel."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8, generator=g)
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    checker = (((rows + cols + seed) % 2) * 255).to(torch.uint8).expand(1, 1, height, width).clone()
    flat = torch.full((1, 2, height, width), 37 + seed, dtype=torch.uint8)
    flat[0, 1, height // 2, width // 2] = 255
    return [noise, checker, flat]


def _float_images(height: int, width: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    uniform = torch.rand((2, 2, height, width), dtype=torch.float64, generator=g)
    wide = torch.randn((1, 3, height, width), dtype=torch.float64, generator=g) * 1e3
    return [uniform, wide, uniform.float()]


def _assert_same(ours: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    assert ours.dtype == reference.dtype and ours.shape == reference.shape, what
    assert torch.equal(ours, reference), what


# --- equality with the previous formulation --------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES, ids=[f"{s:.3g}" for s in SCALES])
@pytest.mark.parametrize("border", ["symmetric", "replicate"])
@pytest.mark.parametrize("variant", ["uint8", "double"])
def test_uint8_images_are_bit_identical_to_the_gather_formulation(scale: float, border: Any, variant: Any) -> None:
    for height, width in SIZES:
        for seed in (0, 1):
            for img in _uint8_images(height, width, seed):
                kwargs = {"variant": variant, "border": border}
                what = f"{tuple(img.shape)} seed {seed}"
                _assert_same(imresize(img, scale, **kwargs), reference_imresize(img, scale, **kwargs), what)


@pytest.mark.parametrize("scale", SCALES, ids=[f"{s:.3g}" for s in SCALES])
@pytest.mark.parametrize("border", ["symmetric", "replicate"])
def test_float_images_are_bit_identical_to_the_gather_formulation(scale: float, border: Any) -> None:
    for height, width in SIZES:
        for seed in (2, 3):
            for x in _float_images(height, width, seed):
                what = f"{tuple(x.shape)} {x.dtype} seed {seed}"
                ours, reference = (
                    imresize_float(x, scale, border=border),
                    reference_imresize_float(x, scale, border=border),
                )
                _assert_same(ours, reference, what)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 0.3])
def test_without_antialiasing_is_bit_identical(scale: float) -> None:
    for height, width in SIZES:
        for variant in ("uint8", "double"):
            for img in _uint8_images(height, width, 4):
                kwargs = {"variant": variant, "antialiasing": False}
                what = f"{tuple(img.shape)} {variant}"
                _assert_same(imresize(img, scale, **kwargs), reference_imresize(img, scale, **kwargs), what)
        x = _float_images(height, width, 5)[1]
        ours, reference = (
            imresize_float(x, scale, antialiasing=False),
            reference_imresize_float(x, scale, antialiasing=False),
        )
        _assert_same(ours, reference, f"float {tuple(x.shape)}")


@pytest.mark.parametrize(
    ("in_size", "out_size"),
    [
        ((9, 7), (36, 28)),  # ×4 as a size
        ((40, 36), (10, 9)),  # ×1/4 as a size
        ((13, 10), (4, 3)),  # ceil(13/4) by hand: not an integer ratio
        ((5, 9), (7, 13)),  # no ratio at all
        ((6, 6), (6, 18)),  # one dimension unchanged, the other ×3
        ((1, 4), (3, 1)),  # 1-px in, 1-px out
        ((12, 12), (37, 5)),  # up in one dimension, down in the other
    ],
)
def test_sizes_are_bit_identical(in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    for border in ("symmetric", "replicate"):
        for variant in ("uint8", "double"):
            for img in _uint8_images(*in_size, seed=6):
                kwargs = {"size": out_size, "variant": variant, "border": border}
                _assert_same(imresize(img, **kwargs), reference_imresize(img, **kwargs), f"{variant} {border}")
        x = _float_images(*in_size, seed=7)[1]
        _assert_same(
            imresize_float(x, size=out_size, border=border),
            reference_imresize_float(x, size=out_size, border=border),
            border,
        )


def test_image_sized_inputs_are_bit_identical() -> None:
    """A larger RGB batch down and back up; its LR (33x25) has odd sizes, as the 161x256 LR of a 644x1024 HR."""
    g = torch.Generator().manual_seed(8)
    hr = torch.randint(0, 256, (2, 3, 132, 98), dtype=torch.uint8, generator=g)
    for variant in ("uint8", "double"):
        lr = imresize(hr, 0.25, variant=variant)
        _assert_same(lr, reference_imresize(hr, 0.25, variant=variant), f"down {variant}")
        _assert_same(imresize(lr, 4.0, variant=variant), reference_imresize(lr, 4.0, variant=variant), f"up {variant}")


@pytest.mark.parametrize("block_values", [1, 3000, 20000])
def test_blocks_of_any_size_are_bit_identical(monkeypatch: pytest.MonkeyPatch, block_values: int) -> None:
    """Small CPU blocks, so that images of test size split into many: blocks that read the input in place, blocks
    at the border (copies), and block edges inside a phase."""
    monkeypatch.setattr(imresize_module, "_CPU_BLOCK_VALUES", block_values)
    for height, width in [(37, 29), (64, 48), (5, 7), (2, 3)]:
        noise, checker, _ = _uint8_images(height, width, seed=12)
        uniform, _, single = _float_images(height, width, seed=13)
        for scale in (0.25, 1 / 3, 0.3, 4.0, 3.0):
            for variant in ("uint8", "double"):
                for img in (noise, checker):
                    ours, reference = (
                        imresize(img, scale, variant=variant),
                        reference_imresize(img, scale, variant=variant),
                    )
                    _assert_same(ours, reference, f"{tuple(img.shape)} ×{scale} {variant}")
            for x in (uniform, single):
                _assert_same(imresize_float(x, scale), reference_imresize_float(x, scale), f"{x.dtype} ×{scale}")


def test_non_contiguous_input_is_bit_identical() -> None:
    g = torch.Generator().manual_seed(9)
    img = torch.randint(0, 256, (2, 19, 23, 3), dtype=torch.uint8, generator=g).permute(0, 3, 1, 2)
    for scale in (0.25, 4.0):
        _assert_same(imresize(img, scale), reference_imresize(img, scale), f"×{scale}")


@pytest.mark.gpu
def test_cuda_is_bit_identical_to_the_gather_formulation_on_the_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    g = torch.Generator().manual_seed(10)
    img = torch.randint(0, 256, (4, 3, 67, 45), dtype=torch.uint8, generator=g)
    for scale in (0.25, 1 / 3, 0.3, 2.0, 4.0, 1.7):
        for variant in ("uint8", "double"):
            ours = imresize(img.cuda(), scale, variant=variant).cpu()
            _assert_same(ours, reference_imresize(img, scale, variant=variant), f"×{scale} {variant}")


# --- which route runs ------------------------------------------------------------------------------------------


def _forbid(monkeypatch: pytest.MonkeyPatch, route: str) -> None:
    def refuse(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError(f"the {route} route ran")

    monkeypatch.setattr(imresize_module, route, refuse)


@pytest.mark.parametrize("shape", [(1, 3, 160, 256), (2, 1, 33, 17), (1, 1, 2, 3), (1, 1, 1, 1)])
def test_integer_factors_take_the_strided_route(monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...]) -> None:
    """×1/4 (the LR) and ×4 (the bicubic baseline) never gather, whatever the size, the border or the variant:
    the benchmark's speed rests on it."""
    img = torch.zeros(shape, dtype=torch.uint8)
    _forbid(monkeypatch, "_gather_pass")
    for scale in (0.25, 4.0, 0.5, 3.0):
        for border in ("symmetric", "replicate"):
            for variant in ("uint8", "double"):
                imresize(img, scale, variant=variant, border=border)
            imresize_float(img.float(), scale, border=border)
    height, width = shape[-2:]
    imresize(img, size=(4 * height, 4 * width))
    if height % 4 == 0 and width % 4 == 0:
        imresize(img, size=(height // 4, width // 4))  # how training makes its LR


def test_the_comparisons_cover_every_form_of_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """SCALES reach the three forms that the equality tests above compare: strided with one weight per tap and
    phase (×4, ×1/4), strided with each output's own weights where a phase's doubles differ (×3, ×0.3), and the
    gather route where positions do not repeat (×1.7, and a size that is no ratio of small integers)."""
    forms = {}
    for scale in SCALES:
        strided = imresize_module._plan(40, math.ceil(40 * scale), scale, True, "symmetric").strided
        forms[scale] = "gather" if strided is None else {type(w).__name__ for w in strided.weights}
    assert forms[0.25] == forms[4.0] == {"tuple"}
    assert "Tensor" in forms[3.0] and "Tensor" in forms[0.3]
    assert forms[1.7] == "gather"
    _forbid(monkeypatch, "_strided_pass")
    img = torch.zeros((1, 1, 60, 50), dtype=torch.uint8)
    imresize(img, 1.7)
    imresize(img, size=(37, 29))


# --- rounding ---------------------------------------------------------------------------------------------------


def _around(values: torch.Tensor, ulps: int) -> torch.Tensor:
    """Every value and its neighbours up to `ulps` representable doubles away on each side."""
    out = [values]
    below, above = values.clone(), values.clone()
    for _ in range(ulps):
        below = torch.nextafter(below, torch.tensor(-math.inf, dtype=torch.float64))
        above = torch.nextafter(above, torch.tensor(math.inf, dtype=torch.float64))
        out += [below, above]
    return torch.cat(out)


def test_in_place_rounding_equals_matlab_round_then_clamp() -> None:
    """On every half-integer and integer in −40..300 and their neighbouring doubles (0.5 − 1 ulp must not go up,
    k + 0.5 must), the largest doubles below 2⁵³, random values, infinities and −0."""
    halves = torch.arange(-80, 601, dtype=torch.float64) / 2
    big = torch.tensor([2.0**51, 2.0**52, 2.0**53 - 1, 2.0**60], dtype=torch.float64)
    g = torch.Generator().manual_seed(11)
    noise = torch.cat(
        [torch.rand(10_000, dtype=torch.float64, generator=g) * 340 - 40, torch.rand(1000, generator=g).double()]
    )
    specials = torch.tensor([0.49999999999999994, -0.0, 0.0, math.inf, -math.inf, 1e-300, -1e-300], dtype=torch.float64)
    x = torch.cat([_around(halves, 3), _around(big, 2), _around(-big, 2), noise, specials])
    expected = _reference_round(x).clamp_(0, 255)
    ours = round_clamp_uint8_range_(x.clone())
    assert torch.equal(ours, expected)
    assert torch.equal(ours.to(torch.uint8), expected.to(torch.uint8))
    assert round_clamp_uint8_range_(torch.tensor([0.49999999999999994, 0.5, 2.5], dtype=torch.float64)).tolist() == [
        0,
        1,
        3,
    ]


def test_in_place_rounding_of_other_dtypes_is_matlab_round_then_clamp() -> None:
    x = torch.tensor([0.5, 1.5, 2.4999998, 254.5, 300.0, -3.0], dtype=torch.float32)
    assert torch.equal(round_clamp_uint8_range_(x.clone()), _reference_round(x).clamp_(0, 255))


def test_matlab_round_is_unchanged() -> None:
    x = _around(torch.arange(-20, 21, dtype=torch.float64) / 2, 2)
    assert torch.equal(matlab_round(x), _reference_round(x))

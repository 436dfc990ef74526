"""MATLAB imresize: bit-exact against files made by real MATLAB, plus structural properties."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from sreval.datasets.registry import get_dataset
from sreval.errors import SrevalError
from sreval.imageio import load_image, to_tensor
from sreval.matlab.imresize import contributions, imresize, imresize_float


def _hr(root: Path, dataset: str, name: str) -> torch.Tensor:
    return to_tensor(load_image(root / get_dataset(dataset).image(name).path).pixels)


@pytest.mark.parametrize("name", ["baby", "bird", "butterfly", "head", "woman"])
def test_uint8_variant_is_bit_exact_to_matlab_set5(data_root: Path, name: str) -> None:
    reference = to_tensor(load_image(data_root / "Set5" / "LR_x4_matlab" / f"{name}x4.png").pixels)
    ours = imresize(_hr(data_root, "set5", name), 0.25, variant="uint8")
    assert ours.shape == reference.shape
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("name", ["baboon", "comic"])
def test_double_variant_is_bit_exact_to_matlab_esrgan(data_root: Path, name: str) -> None:
    reference = to_tensor(load_image(data_root / "Set14" / "LR_x4_matlab_double_esrgan" / f"{name}.png").pixels)
    ours = imresize(_hr(data_root, "set14", name), 0.25, variant="double")
    assert torch.equal(ours, reference)


def test_variants_differ_slightly(data_root: Path) -> None:
    """The two published variants disagree by at most 1 grey level (on ~10 % of baboon's LR pixels)."""
    hr = _hr(data_root, "set14", "baboon")
    a = imresize(hr, 0.25, variant="uint8").int()
    b = imresize(hr, 0.25, variant="double").int()
    diff = (a - b).abs()
    assert diff.max() == 1
    assert 0.01 < diff.float().mean() < 0.2


@pytest.mark.parametrize("dataset", ["set5", "set14"])
def test_replicate_border_reproduces_selfexsr_lr_files(data_root: Path, dataset: str) -> None:
    spec = get_dataset(dataset)
    for entry in spec.images:
        lr_path = data_root / spec.folder / "LR_x4_selfexsr" / Path(entry.path).name.replace("_HR", "_LR")
        reference = to_tensor(load_image(lr_path).pixels)
        ours = imresize(_hr(data_root, dataset, entry.name), 0.25, border="replicate")
        assert torch.equal(ours, reference), entry.name


def test_symmetric_and_replicate_differ_only_at_the_border(data_root: Path) -> None:
    hr = _hr(data_root, "set5", "baby")
    sym = imresize(hr, 0.25).int()
    rep = imresize(hr, 0.25, border="replicate").int()
    inner = (sym - rep)[..., 2:-2, 2:-2]
    assert inner.abs().max() == 0
    assert (sym != rep).any()


def _keys_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _independent_row(in_len: int, scale: float, out_pixel: int) -> dict[int, float]:
    """Input index (0-based, mirrored) → weight for one output pixel, from the textbook definition."""
    stretch = 1 / scale if scale < 1 else 1.0
    centre = (out_pixel + 0.5) / scale - 0.5  # 0-based continuous coordinate
    row: dict[int, float] = {}
    for j in range(math.floor(centre - 2 * stretch) - 1, math.ceil(centre + 2 * stretch) + 2):
        weight = _keys_cubic((centre - j) / stretch) / stretch
        mirrored = j % (2 * in_len)
        mirrored = mirrored if mirrored < in_len else 2 * in_len - 1 - mirrored
        row[mirrored] = row.get(mirrored, 0.0) + weight
    total = sum(row.values())
    return {k: v / total for k, v in row.items() if v != 0}


@pytest.mark.parametrize(("in_len", "out_len", "scale"), [(64, 16, 0.25), (16, 64, 4.0), (30, 10, 1 / 3)])
def test_contributions_match_the_textbook_kernel(in_len: int, out_len: int, scale: float) -> None:
    """Weights sum to one and equal the Keys kernel (a = -0.5), stretched by 1/scale when downscaling."""
    weights, indices = contributions(in_len, out_len, scale)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(out_len, dtype=torch.float64), rtol=0, atol=1e-14)
    for out_pixel in range(out_len):
        ours: dict[int, float] = {}
        for w, i in zip(weights[out_pixel].tolist(), indices[out_pixel].tolist(), strict=True):
            ours[i] = ours.get(i, 0.0) + w
        ours = {k: v for k, v in ours.items() if v != 0}
        expected = _independent_row(in_len, scale, out_pixel)
        assert ours.keys() == expected.keys()
        for k in ours:
            assert ours[k] == pytest.approx(expected[k], abs=1e-12)


def test_scale_one_is_identity_and_sizes_round_up() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (2, 3, 21, 17), dtype=torch.uint8, generator=g)
    assert torch.equal(imresize(img, 1.0), img)
    assert imresize(img, 0.25).shape[-2:] == (6, 5)  # ceil(21/4), ceil(17/4), as MATLAB
    assert imresize(img, size=(10, 30)).shape[-2:] == (10, 30)


def test_batch_equals_single_images() -> None:
    g = torch.Generator().manual_seed(1)
    img = torch.randint(0, 256, (3, 3, 40, 36), dtype=torch.uint8, generator=g)
    batch = imresize(img, 0.25)
    for i in range(3):
        assert torch.equal(batch[i : i + 1], imresize(img[i : i + 1], 0.25))


def test_upsampling_constant_image_stays_constant() -> None:
    img = torch.full((1, 1, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(imresize(img, 4.0), torch.full((1, 1, 32, 32), 77, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0.5, "variant": "float"}, "unknown imresize variant"),
        ({"scale": None}, "exactly one of"),
        ({"scale": -1.0}, "positive"),
        ({"scale": 0.5, "border": "wrap"}, "unknown border"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    img = torch.zeros((1, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(SrevalError, match=message):
        imresize(img, **kwargs)


def test_rejects_float_and_unbatched_input() -> None:
    with pytest.raises(SrevalError, match="uint8"):
        imresize(torch.zeros((1, 3, 8, 8)), 0.5)
    with pytest.raises(SrevalError, match="N, C, H, W"):
        imresize(torch.zeros((3, 8, 8), dtype=torch.uint8), 0.5)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    g = torch.Generator().manual_seed(2)
    img = torch.randint(0, 256, (2, 3, 64, 48), dtype=torch.uint8, generator=g)
    for variant in ("uint8", "double"):
        down = imresize(img, 0.25, variant=variant)
        assert torch.equal(imresize(img.cuda(), 0.25, variant=variant).cpu(), down)
        assert torch.equal(imresize(down.cuda(), 4.0).cpu(), imresize(down, 4.0))


def test_float_resize_is_the_double_variant_before_rounding(data_root: Path) -> None:
    """imresize_float on im2double input, scaled and rounded, is the bit-exact `double` variant."""
    hr = _hr(data_root, "set14", "comic")
    x = imresize_float(hr.double() / 255, 0.25)
    assert x.dtype == torch.float64
    rounded = torch.floor(x * 255 + 0.5).clamp(0, 255).to(torch.uint8)
    assert torch.equal(rounded, imresize(hr, 0.25, variant="double"))
    with pytest.raises(SrevalError, match="floating-point"):
        imresize_float(hr, 0.5)

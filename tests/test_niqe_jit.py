"""The compiled NIQE kernels (`niqe_jit`) against the numpy kernels they stand in for, bit for bit.

Every comparison is `np.array_equal` (and the sign of every zero), never a tolerance: the compiled kernels must do
the same IEEE operations in the same order per pixel, and a contracted multiply-add or a reordered sum would show
here. The selector falls back to the numpy kernels where numba does not import, and NIQE is then the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sreval.metrics.niqe as niqe_module
import sreval.metrics.niqe_blocks as niqe_blocks
import sreval.metrics.niqe_kernels as niqe_kernels
from sreval.imageio import load_image, to_tensor
from sreval.metrics.niqe import NUMPY_KERNELS, niqe, shipped_niqe_model
from sreval.metrics.perceptual import pirm_plane
from sreval.protocol import Protocol
from tests.test_niqe_kernels import _adversarial_planes, _awkward_coefficients

niqe_jit = pytest.importorskip("sreval.metrics.niqe_jit", exc_type=ImportError)

REPO = Path(__file__).resolve().parents[1]


def _same_bits(ours: np.ndarray, reference: np.ndarray) -> bool:
    return (
        ours.dtype == reference.dtype
        and np.array_equal(ours, reference, equal_nan=True)
        and np.array_equal(np.signbit(ours), np.signbit(reference))
    )


def _random_planes() -> list[tuple[str, np.ndarray]]:
    """Integer planes 0..255 and real planes of many sizes (tiny, odd, one row or column), flat and ramp planes
    (MSCN exactly 0), extremes, and values far apart in magnitude."""
    rng = np.random.default_rng(11)
    shapes = [(1, 1), (1, 9), (9, 1), (2, 2), (3, 5), (7, 7), (8, 3), (13, 29), (41, 57), (64, 96), (97, 131)]
    shapes += [(int(h), int(w)) for h, w in rng.integers(1, 120, (24, 2))]
    planes = []
    for h, w in shapes:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        planes += [
            (f"integers {h}x{w}", rng.integers(0, 256, (h, w)).astype(np.float64)),
            (f"low integers {h}x{w}", rng.integers(0, 3, (h, w)).astype(np.float64)),
            (f"reals {h}x{w}", rng.uniform(-50, 300, (h, w))),
            (f"normal {h}x{w}", rng.standard_normal((h, w)) * 10.0 ** rng.integers(-8, 8, (h, w))),
            (f"flat {h}x{w}", np.full((h, w), float(rng.integers(0, 256)))),
            (f"flat real {h}x{w}", np.full((h, w), 12.345)),
            (f"ramp {h}x{w}", (3 * xx + 2 * yy) % 256),
            (f"real ramp {h}x{w}", 0.5 * xx - 0.25 * yy + 0.1),
        ]
    return planes


RANDOM_PLANES = _random_planes()


@pytest.mark.parametrize(("name", "plane"), RANDOM_PLANES + list(_adversarial_planes().items()))
def test_mscn_is_the_numpy_kernels_bit_for_bit(name: str, plane: np.ndarray) -> None:
    assert _same_bits(niqe_jit.mscn_float(plane), niqe_kernels.mscn_float(plane)), name
    if niqe_module._uint8_valued(plane):
        assert _same_bits(niqe_jit.mscn_integer(plane), niqe_kernels.mscn_integer(plane)), name


def test_flat_and_ramp_planes_give_exact_zeros() -> None:
    """The cancellation the kernels exist for: not a rounding residue, the same signed zero as numpy's."""
    yy, xx = np.mgrid[0:40, 0:60].astype(np.float64)
    for plane in (np.full((40, 60), 77.0), 3 * xx + 2 * yy):
        for kernel in (niqe_jit.mscn_integer, niqe_jit.mscn_float):
            assert (kernel(plane)[3:-3, 3:-3] == 0).all()
    assert (niqe_jit.mscn_float(0.25 * xx - 0.125 * yy + 100.5)[3:-3, 3:-3] == 0).all()


def test_numpy_strips_equal_the_compiled_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy kernels work on bands of rows; with bands of 8 rows (the least) they still give the compiled
    kernels' bits."""
    monkeypatch.setattr(niqe_kernels, "STRIP_PIXELS", 1)
    for name, plane in RANDOM_PLANES[::5]:
        assert _same_bits(niqe_jit.mscn_float(plane), niqe_kernels.mscn_float(plane)), name
        if niqe_module._uint8_valued(plane):
            assert _same_bits(niqe_jit.mscn_integer(plane), niqe_kernels.mscn_integer(plane)), name


@pytest.mark.parametrize("shape", [(96, 96), (288, 480), (98, 134), (2, 2), (4, 6), (376, 504), (97, 131), (16, 9)])
def test_imresize_half_is_the_numpy_kernel_bit_for_bit(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    for plane in (rng.uniform(0, 255, shape), rng.integers(0, 256, shape).astype(np.float64)):
        assert _same_bits(niqe_jit.imresize_half(plane), niqe_kernels.imresize_half(plane)), shape


@pytest.mark.parametrize("block", [24, 10, 6, 2])
@pytest.mark.parametrize("batch_pixels", [1, 5 * 24 * 24, niqe_blocks.BATCH_PIXELS])
@pytest.mark.parametrize("dot_length", [niqe_blocks.DOT_LENGTH, 300, 150, 30, 5])
@pytest.mark.parametrize("blas_agree", [True, False])
def test_block_features_are_the_numpy_code_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, block: int, batch_pixels: int, dot_length: int, blas_agree: bool
) -> None:
    """Signed zeros, a block of zeros (NaN features), one-signed blocks, products that underflow, NaN values (both
    sides, as numpy's minimum and maximum give them); one block per batch up to whole planes; rows summed in one
    dot product, in 2 or 4 pieces (summed compiled), in 8 or more and by einsum (summed by numpy); and with the
    compiled sums ruled out, as where the two BLAS libraries disagree."""
    monkeypatch.setattr(niqe_blocks, "BATCH_PIXELS", batch_pixels)
    monkeypatch.setattr(niqe_blocks, "DOT_LENGTH", dot_length)
    if not blas_agree:
        monkeypatch.setattr(niqe_jit, "blas_dots_agree", lambda: False)
    structdis = _awkward_coefficients(block, 3, 4)
    with_nan = structdis.copy()
    with_nan[block + 1, 2 * block + 1] = np.nan
    for values in (structdis, with_nan, np.zeros_like(structdis)):
        ours = niqe_jit.block_features(values, block)
        assert ours.shape == (12, 18) and _same_bits(ours, niqe_blocks.block_features(values, block))


def test_block_sums_run_compiled_where_the_blas_libraries_agree() -> None:
    """NIQE's blocks (96² values in 2 pieces, 48² in one) are summed in the compiled call, unless numba's BLAS
    sums in another order than numpy's (then the per-batch path with numpy's sums keeps the bits)."""
    if not niqe_jit.blas_dots_agree():
        pytest.skip("numba's BLAS (scipy's) and numpy's sum dot products differently here")
    assert niqe_jit._compiled_sums(96 * 96) == 2 and niqe_jit._compiled_sums(48 * 48) == 1


def test_block_sides_are_numpy_minimum_and_maximum() -> None:
    """The sides and counts themselves, for every array of a batch: min(v, +0), max(v, +0) with their zeros'
    signs, and NaN on both sides."""
    rng = np.random.default_rng(2)
    values = rng.standard_normal((3 * 8, 2 * 8))
    values[rng.random(values.shape) < 0.2] = -0.0
    values[rng.random(values.shape) < 0.2] = 0.0
    values[5, 5] = np.nan
    sides, counts = np.empty((2, 6, 64)), np.empty((2, 6))
    for k in range(1 + len(niqe_blocks.SHIFTS)):
        niqe_jit.block_sides(values, 8, 0, 6, k, sides, counts)
        blocks = np.empty((6, 8, 8))
        niqe_blocks._copy_blocks(values, 8, 0, blocks)
        if k:
            product = np.empty_like(blocks)
            niqe_blocks._shifted_product(blocks, niqe_blocks.SHIFTS[k - 1], product)
            blocks = product
        flat = blocks.reshape(6, 64)
        below, above = np.minimum(flat, np.zeros_like(flat)), np.maximum(flat, np.zeros_like(flat))
        assert _same_bits(sides[0], below) and _same_bits(sides[1], above), k
        assert np.array_equal(counts, [np.count_nonzero(below, -1), np.count_nonzero(above, -1)]), k


def _benchmark_planes(data_root: Path) -> list[tuple[str, torch.Tensor]]:
    iqa = data_root.parent / "iqa" / "calibration_pyiqa" / "dist_dir"
    paths = sorted(iqa.glob("*.bmp")) + sorted((data_root / "Set5" / "HR").glob("*.png"))[:3]
    paths += sorted((data_root / "Urban100" / "HR").glob("*.png"))[:2]
    return [(p.name, pirm_plane(to_tensor(load_image(p).pixels), Protocol())) for p in paths]


def test_niqe_of_benchmark_images_is_the_numpy_kernels_bit_for_bit(
    data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every kernel on real images (their integer planes, half-scale planes, coefficients), and the score."""
    model = shipped_niqe_model()
    planes = _benchmark_planes(data_root)
    assert len(planes) >= 5
    for name, plane in planes:
        h, w = plane.shape[-2:]
        x = plane[0, 0, : h // 96 * 96, : w // 96 * 96].numpy().copy()
        half = niqe_kernels.imresize_half(x)
        assert _same_bits(niqe_jit.imresize_half(x), half), name
        s1, s2 = niqe_kernels.mscn_integer(x), niqe_kernels.mscn_float(half)
        assert _same_bits(niqe_jit.mscn_integer(x), s1), name
        assert _same_bits(niqe_jit.mscn_float(half), s2), name
        assert _same_bits(niqe_jit.block_features(s1, 96), niqe_blocks.block_features(s1, 96)), name
        assert _same_bits(niqe_jit.block_features(s2, 48), niqe_blocks.block_features(s2, 48)), name
        compiled = niqe(plane, model)
        monkeypatch.setattr(niqe_module, "kernels", lambda: NUMPY_KERNELS)
        assert torch.equal(niqe(plane, model), compiled), name
        monkeypatch.undo()


def test_the_selector_picks_the_compiled_kernels() -> None:
    assert niqe_module.kernels().name == "numba"
    assert niqe_module.kernels().mscn_integer is niqe_jit.mscn_integer


def test_one_compiled_signature_per_kernel() -> None:
    """The wrappers hand every kernel C-contiguous float64 planes, so that one compilation serves all inputs
    (float32, integers, transposed views)."""
    plane = np.random.default_rng(4).integers(0, 256, (48, 40))
    for x in (plane, plane.astype(np.float32), plane.T, plane.astype(np.float64)[::2]):
        niqe_jit.mscn_integer(x), niqe_jit.mscn_float(x), niqe_jit.imresize_half(x)
        niqe_jit.block_features(niqe_jit.mscn_float(x)[:16, :16], 8)
    sides, counts = np.empty((2, 1, 64)), np.empty((2, 1))
    niqe_jit.block_sides(niqe_jit.mscn_float(plane)[:8, :8], 8, 0, 1, 1, sides, counts)
    kernels = [niqe_jit._mscn_integer, niqe_jit._mscn_float, niqe_jit._half_both, niqe_jit._block_sides]
    kernels += [niqe_jit._block_moments, niqe_jit._dot_sum]
    assert [len(k.signatures) for k in kernels] == [1] * len(kernels)


_WITHOUT_NUMBA = """
import sys
sys.modules["numba"] = None  # import numba now raises ImportError, as where it is not installed
import numpy as np, torch
import sreval.metrics.niqe as niqe_module
from sreval.metrics.niqe import niqe, shipped_niqe_model
assert niqe_module.kernels().name == "numpy"
plane = torch.from_numpy(np.load(sys.argv[1]))
print(repr(float(niqe(plane, shipped_niqe_model())[0])))
assert "sreval.metrics.niqe_jit" not in sys.modules
"""


def test_without_numba_the_numpy_kernels_give_the_same_score(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    plane = np.clip(rng.normal(128, 40, (1, 1, 200, 300)).round(), 0, 255)
    np.save(tmp_path / "plane.npy", plane)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_NUMBA, str(tmp_path / "plane.npy")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == float(niqe(torch.from_numpy(plane), shipped_niqe_model())[0])

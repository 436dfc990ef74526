"""The numpy NIQE kernels against the torch formulation they replaced, kept here as the reference.

The MSCN coefficients must be the same bits (integer ring sums in int16/int32, deviations per mirror pair, the
same float64 weighting order), and exactly 0 where a window's deviations cancel ring by ring. MATLAB's half-scale
imresize must be the same bits as `imresize_float`. The block features sum in another order than torch did, so
they agree to a stated tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sreval.metrics.niqe as niqe_module
import sreval.metrics.niqe_blocks as niqe_blocks
import sreval.metrics.niqe_kernels as niqe_kernels
from sreval.matlab.imresize import imresize_float
from sreval.metrics.niqe_blocks import SHIFTS, aggd_tables, block_features, grid_index
from sreval.metrics.niqe_kernels import RADIUS, _half_taps, imresize_half, mscn_float, mscn_integer, window_rings


def _reference_mscn(x: torch.Tensor) -> torch.Tensor:
    """The previous torch `_mscn`: ring by ring, one mirror pair at a time (float32 on integer planes)."""
    h, w = x.shape[-2:]
    r = RADIUS
    integer = bool(((x >= 0) & (x <= 255) & (x == torch.round(x))).all())
    work = x.to(torch.float32) if integer else x
    padded = F.pad(work, (r, r, r, r), mode="replicate")
    dev, var = torch.zeros_like(x), torch.zeros_like(x)
    for weight, offsets in window_rings():
        ring_sum, ring_sq = torch.zeros_like(work), torch.zeros_like(work)
        for dy, dx in offsets:
            a = padded[..., r + dy : r + dy + h, r + dx : r + dx + w] - work
            b = padded[..., r - dy : r - dy + h, r - dx : r - dx + w] - work
            ring_sum.add_(a + b)
            ring_sq.add_(a * a).add_(b * b)
        dev.add_(ring_sum.to(torch.float64).mul_(weight))
        var.add_(ring_sq.to(torch.float64).mul_(weight))
    var.sub_(dev * dev)
    # torch's CPU sqrt of float64 is off by one ulp for about 1 % of arguments (not correctly rounded); numpy's,
    # MATLAB's and CUDA's are correctly rounded. The reference takes numpy's so that the rest compares bit for bit.
    sigma = torch.from_numpy(np.sqrt(var.abs_().numpy()))
    return dev.neg_().div_(sigma.add_(1))


def _adversarial_planes() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:41, 0:57].astype(np.float64)
    planes = {
        "random integers": rng.integers(0, 256, (41, 57)).astype(np.float64),
        "random reals": rng.uniform(-20, 300, (41, 57)),
        "extremes 0/255": rng.choice([0.0, 255.0], (41, 57)),
        "checkerboard": 255.0 * ((yy + xx) % 2),
        "integer ramp": 3 * xx + 2 * yy,
        "dyadic ramp": 0.25 * xx - 0.125 * yy + 100.5,
        "tiny plane": rng.integers(0, 256, (3, 5)).astype(np.float64),
        "one ulp apart": 200.0 + np.spacing(200.0) * rng.integers(0, 2, (41, 57)),
    }
    flat = rng.integers(0, 256, (41, 57)).astype(np.float64)
    flat[5:25, 10:40] = 77.0
    flat[30:, :12] = 0.0
    planes["flat patches"] = flat
    # Odd about (20, 28): each deviation there is minus its mirror image's.
    mirror = 128 + np.clip((xx - 28) ** 3, -100, 100) + (yy - 20)
    planes["mirror symmetric"] = mirror
    planes["mirror symmetric, real"] = 0.25 * mirror + 0.125
    return planes


@pytest.mark.parametrize(("name", "plane"), list(_adversarial_planes().items()))
def test_mscn_is_the_reference_bit_for_bit(name: str, plane: np.ndarray) -> None:
    x = torch.from_numpy(plane)[None, None]
    ours, reference = niqe_module._mscn(x), _reference_mscn(x)
    assert ours.dtype == torch.float64 and ours.shape == x.shape
    assert torch.equal(ours, reference), name
    assert torch.equal(ours.signbit(), reference.signbit()), name  # even the sign of zeros


def test_strips_of_rows_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels work on bands of rows; bands of 8 rows (the least) give the same bits as one band."""
    for name, plane in _adversarial_planes().items():
        whole = niqe_module._mscn(torch.from_numpy(plane)[None, None])
        monkeypatch.setattr(niqe_kernels, "STRIP_PIXELS", 1)
        banded = niqe_module._mscn(torch.from_numpy(plane)[None, None])
        monkeypatch.undo()
        assert torch.equal(whole, banded), name


def test_integer_and_float_paths_agree_on_integers() -> None:
    for name, plane in _adversarial_planes().items():
        if np.array_equal(plane, np.round(plane)) and plane.min() >= 0 and plane.max() <= 255:
            np.testing.assert_array_equal(mscn_integer(plane), mscn_float(plane), err_msg=name)


def test_cancelling_windows_give_exact_zeros() -> None:
    planes = _adversarial_planes()
    flat = mscn_integer(planes["flat patches"])
    assert (flat[8:22, 13:37] == 0).all() and (flat[33:, :9] == 0).all()
    assert (mscn_integer(planes["integer ramp"])[3:-3, 3:-3] == 0).all()  # away from the replicated border
    assert (mscn_float(planes["dyadic ramp"])[3:-3, 3:-3] == 0).all()
    assert mscn_integer(planes["mirror symmetric"])[20, 28] == 0
    assert mscn_float(planes["mirror symmetric, real"])[20, 28] == 0
    assert (mscn_float(np.full((20, 30), 123.456)) == 0).all()
    assert (mscn_float(planes["random reals"]) != 0).all()


@pytest.mark.parametrize("shape", [(96, 96), (288, 480), (98, 134), (97, 131), (16, 9)])
def test_imresize_half_is_imresize_float_bit_for_bit(shape: tuple[int, int]) -> None:
    plane = np.random.default_rng(shape[0]).uniform(0, 255, shape)
    reference = imresize_float(torch.from_numpy(plane)[None, None], 0.5)[0, 0].numpy()
    np.testing.assert_array_equal(imresize_half(plane), reference)


def test_even_lengths_take_the_strided_path() -> None:
    assert all(_half_taps(n) is not None for n in range(10, 800, 2))


def _reference_aggd(v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The previous torch `_aggd` (masks, torch sums, searchsorted on the grid)."""
    alpha_grid, r_grid, beta_factor, mean_factor = (torch.from_numpy(t) for t in aggd_tables())
    neg, pos, sq = v < 0, v > 0, v * v
    left = torch.sqrt(torch.where(neg, sq, 0.0).sum(-1) / neg.sum(-1))
    right = torch.sqrt(torch.where(pos, sq, 0.0).sum(-1) / pos.sum(-1))
    g = left / right
    rhat = v.abs().mean(-1) ** 2 / sq.mean(-1)
    rhatnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    i = torch.from_numpy(grid_index(r_grid.numpy(), rhatnorm.numpy()))
    return alpha_grid[i], left * beta_factor[i], right * beta_factor[i], mean_factor[i]


def _reference_block_features(structdis: np.ndarray, block: int) -> np.ndarray:
    """The previous torch `_scale_features` of one plane."""
    s = torch.from_numpy(structdis)[None]
    _, h, w = s.shape
    blocks = s.reshape(1, h // block, block, w // block, block).permute(0, 3, 1, 2, 4).reshape(1, -1, block, block)
    alpha, beta_l, beta_r, _ = _reference_aggd(blocks.flatten(-2))
    feats = [alpha, (beta_l + beta_r) / 2]
    for shift in SHIFTS:
        alpha, beta_l, beta_r, mean_factor = _reference_aggd((blocks * torch.roll(blocks, shift, (-2, -1))).flatten(-2))
        feats += [alpha, (beta_r - beta_l) * mean_factor, beta_l, beta_r]
    return torch.stack(feats, dim=-1)[0].numpy()


def test_block_features_equal_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random coefficients with zeros, a block of zeros (NaN features), a one-signed block, a lone nonzero value;
    blocks are taken down the columns. Sums run in another order than torch's: relative 1e-12."""
    rng = np.random.default_rng(3)
    structdis = rng.standard_normal((3 * 24, 4 * 24)) * rng.uniform(0.1, 2, (3 * 24, 4 * 24))
    structdis[rng.random(structdis.shape) < 0.2] = 0.0
    structdis[:24, :24] = 0.0
    structdis[24:48, :24] = np.abs(structdis[24:48, :24])
    structdis[48:, :24] = 0.0
    structdis[50, 3] = -0.5
    ours = block_features(structdis, 24)
    reference = _reference_block_features(structdis, 24)
    assert ours.shape == (12, 18) and np.isnan(ours[0]).any()
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    monkeypatch.setattr(niqe_blocks, "BATCH_PIXELS", 1)  # one block column at a time
    np.testing.assert_array_equal(block_features(structdis, 24), ours)


def _awkward_coefficients(block: int, rows: int, cols: int) -> np.ndarray:
    """Coefficients that stress the per-block sums: signed zeros (neither side of the AGGD may count them), a block
    of zeros, a one-signed block, a block with one value, values so small that their products underflow."""
    rng = np.random.default_rng(block)
    shape = (rows * block, cols * block)
    structdis = rng.standard_normal(shape) * rng.uniform(0.1, 2, shape)
    structdis[rng.random(shape) < 0.15] = 0.0
    structdis[rng.random(shape) < 0.15] = -0.0
    structdis[:block, :block] = -0.0
    structdis[block : 2 * block, :block] = -np.abs(structdis[block : 2 * block, :block])
    structdis[-block:, -block:] = 0.0
    structdis[-2, -3] = 0.75
    tiny = rng.random(shape) < 0.05
    tiny[: 2 * block, :block] = False
    structdis[tiny] = 1e-170 * np.sign(rng.standard_normal(int(tiny.sum())))
    return structdis


@pytest.mark.parametrize("block", [24, 10, 6])
@pytest.mark.parametrize("batch_pixels", [1, 5 * 24 * 24, niqe_blocks.BATCH_PIXELS])
@pytest.mark.parametrize("dot_length", [niqe_blocks.DOT_LENGTH, 30, 5])
def test_block_features_of_awkward_blocks_equal_the_reference(
    monkeypatch: pytest.MonkeyPatch, block: int, batch_pixels: int, dot_length: int
) -> None:
    """Blocks of 24² values and of 10² and 6² (counts of a side then take another path than multiples of 8
    values), one block per batch, batches that span block columns, and whole planes in one batch; sums of squares
    in one dot product per block, in pieces of at most 30 values, and by einsum (6² values cannot be cut into
    pieces of at most 5)."""
    structdis = _awkward_coefficients(block, 3, 4)
    monkeypatch.setattr(niqe_blocks, "BATCH_PIXELS", batch_pixels)
    monkeypatch.setattr(niqe_blocks, "DOT_LENGTH", dot_length)
    ours = block_features(structdis, block)
    reference = _reference_block_features(structdis, block)
    assert ours.shape == (12, 18)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=0)
    assert np.isnan(ours[0, 1]) and not np.isnan(ours[2]).any()  # the zero block has no sides; the next has both


def _reference_uint8_valued(a: np.ndarray) -> bool:
    """The plain definition: every value an integer in 0..255."""
    return bool(a.size and a.min() >= 0 and a.max() <= 255 and np.array_equal(np.round(a), a))


def test_uint8_check_finds_a_stray_value_anywhere() -> None:
    """The integer path needs integers 0..255 everywhere: one stray value, in the first row (looked at first) or
    further on, sends the plane to the float path; crops and (1, 1, H, W) tensors are checked alike."""
    plane = np.random.default_rng(5).integers(0, 256, (40, 70)).astype(np.float64)
    assert niqe_module._uint8_valued(plane) and niqe_module._uint8_valued(torch.from_numpy(plane)[None, None])
    assert niqe_module._uint8_valued(plane[5:30, 7:60])
    for stray in (255.5, 256.0, -1.0, -0.5, 65541.0, 1e10, -1e300, np.nan, np.inf, -np.inf, -0.0, 0.0):
        for where in ((0, 3), (31, 17)):
            changed = plane.copy()
            changed[where] = stray
            assert niqe_module._uint8_valued(changed) == _reference_uint8_valued(changed), (stray, where)
            assert niqe_module._uint8_valued(changed[:, 1:]) == _reference_uint8_valued(changed[:, 1:])
    assert not niqe_module._uint8_valued(np.zeros((0, 5)))

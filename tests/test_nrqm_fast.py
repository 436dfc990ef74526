"""NRQM's fast routes against the plainer formulations they replaced (tests/nrqm_reference.py), on random inputs
of awkward sizes: the chunked GSM normalisation, the steerable pyramid in DFT order, the FFT contrast-structure,
the strided Gaussian pyramid, the block DCT as one product, the three forests evaluated as one set, the float32
resize and the GGD shape lookup by 1-D gathers; and the pieces that run side by side on torch's threads (same
features on one thread and on two)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nrqm_reference as reference
import numpy as np
import pytest
import torch

from sreval.metrics.nrqm import nrqm_features
from sreval.metrics.nrqm.features import _block_dct_features, _gauss_pyramid
from sreval.metrics.nrqm.gsm import contrast_structure, gsm_normalise
from sreval.metrics.nrqm.model import Forest, ForestSet
from sreval.metrics.nrqm.parallel import Pieces
from sreval.metrics.nrqm.stats import _ggd_table, ggd_shape
from sreval.metrics.nrqm.steerable import N_BANDS, resize_f32, steerable_pyramid

SIZES = (18, 45, 75)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs() / b.abs().clamp(min=1e-12)).max())


@pytest.mark.parametrize("shape", [(64, 64), (65, 97), (83, 70)])
@pytest.mark.parametrize("chunk_pixels", [None, 1, 150, 1000])
def test_gsm_normalise_equals_previous_formulations(shape: tuple[int, int], chunk_pixels: int | None) -> None:
    """Chunk sizes from one row per chunk to chunks that end mid-band, so every chunk boundary (and the crop of
    the guard band inside a chunk) is exercised on small planes."""
    gen = torch.Generator().manual_seed(shape[0] * 1000 + shape[1])
    img = torch.rand(shape, generator=gen, dtype=torch.float64) * 255
    _, scales = steerable_pyramid(img)
    bands = [*scales[0], *scales[1]]
    parents = [resize_f32(b, shape) for b in bands[N_BANDS:]]
    if chunk_pixels is None:
        fast = gsm_normalise(scales, torch.stack(parents))
    else:
        fast = gsm_normalise(scales, torch.stack(parents), chunk_pixels)
    slow = reference.gsm_normalise(bands)
    stacked = reference.gsm_normalise_stacked(bands, parents)
    assert [f.shape for f in fast] == [s.shape for s in slow]
    for f, s, st in zip(fast, slow, stacked, strict=True):
        # The same 15×15 system; they differ in rounding only (the solve's order of operations, and the
        # covariance summed chunk by chunk rather than in one product).
        assert _relative(f, s) <= 1e-10
        assert _relative(f, st) <= 1e-10


@pytest.mark.parametrize("shape", [(64, 64), (65, 97), (97, 64), (83, 70), (71, 71)])
def test_steerable_pyramid_equals_previous_formulation(shape: tuple[int, int]) -> None:
    """Even and odd sizes: the spectrum's centre, its crop to the coarser scale and the shifts all depend on
    the parity of each side."""
    gen = torch.Generator().manual_seed(shape[0] * 31 + shape[1])
    img = torch.rand(shape, generator=gen, dtype=torch.float64) * 255
    hi0, scales = steerable_pyramid(img)
    bands = [*scales[0], *scales[1]]
    ref_hi0, ref_bands = reference.steerable_pyramid(img)
    assert len(bands) == len(ref_bands) == 2 * N_BANDS
    # The same float32 masks in the same order; scipy's transforms instead of torch's, and the band's rotation
    # by −i moved from the spectrum to the output (Re(ifft(−i·B)) = Im(ifft(B))): rounding apart only.
    for got, want in zip([hi0, *bands], [ref_hi0, *ref_bands], strict=True):
        assert got.shape == want.shape
        assert got.is_contiguous()
        assert float((got - want).abs().max()) <= 1e-14 * float(want.abs().max())


@pytest.mark.parametrize("shape", [(11, 11), (12, 30), (47, 53), (64, 97), (97, 64)])
@pytest.mark.parametrize(
    ("n_images", "pairs"),
    [
        (5, [(0, 1), (0, 4), (2, 3), (4, 1), (3, 3)]),
        (3, [(0, 1), (2, 1)]),  # odd map counts: a transform holds a single map
        (2, [(1, 0)]),
    ],
)
def test_contrast_structure_equals_direct_filter(
    shape: tuple[int, int], n_images: int, pairs: list[tuple[int, int]]
) -> None:
    gen = torch.Generator().manual_seed(shape[0] + 7 * shape[1])
    # Different scales per image (as the pyramid's bands and residual have), so that a map mixed up with
    # another one, or a local mean taken from the wrong half of a transform, shows.
    images = [torch.randn(shape, generator=gen, dtype=torch.float64) * 40 / (k + 1) for k in range(n_images)]
    images[1] = images[0] * 0.5 + images[1] * 0.1  # a correlated pair, so cs is far from 0
    fast = contrast_structure(images, pairs)
    slow = reference.contrast_structure(images, pairs)
    assert fast.shape == (len(pairs),)
    assert float((fast - slow).abs().max()) <= 1e-12


@pytest.mark.parametrize("shape", [(64, 64), (65, 97), (66, 95), (9, 200)])
def test_gauss_pyramid_bit_identical_to_filtering_every_pixel(shape: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(shape[0] + shape[1])
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    got, want = _gauss_pyramid(x), reference.gauss_pyramid(x)
    assert [g.shape for g in got] == [w.shape for w in want]
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("shape", [(64, 64), (65, 97), (23, 40), (9, 200)])
def test_block_dct_features_equal_previous_formulation(shape: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(shape[0] * 7 + shape[1])
    level = torch.rand(shape, generator=gen, dtype=torch.float64) ** 3
    # A flat patch (its AC coefficients are rounding noise, which the +1e-7/+1e-8 of the statistics absorb)
    # and a smooth ramp, next to texture of every contrast.
    level[: shape[0] // 2, : shape[1] // 3] = 0.5
    level[shape[0] // 2 :, : shape[1] // 4] = torch.linspace(0, 1, shape[1] // 4, dtype=torch.float64)
    got = _block_dct_features(level)
    want = reference.block_dct_features(level)
    assert got.shape == (6,)
    # The AC coefficients of a flat block are rounding noise (~1e-17), which the coefficient-of-variation
    # statistics divide by mean|c| + 1e-7 (or 1e-8 per orientation): another order of the DCT's sums moves
    # them by up to ~3e-9 here. Everything else agrees to rounding.
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-8)


@pytest.fixture
def two_torch_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("two_torch_threads")
def test_pieces_run_one_torch_thread_each_and_leave_the_callers_count() -> None:
    pieces = Pieces(2)
    try:
        seen = pieces.map(lambda k: (k, torch.get_num_threads()), range(20))
        later = pieces.submit(lambda: torch.get_num_threads() + 100)
        assert seen == [(k, 1) for k in range(20)]
        assert later.result() == 101
        assert pieces.workers == 1 and pieces.caller_workers == 2
        assert torch.get_num_threads() == 2  # the caller's own count, while the pieces' threads hold 1
    finally:
        pieces.close()
    # Threads started afterwards get the caller's count again, not the pieces' 1.
    fresh = ThreadPoolExecutor(1)
    assert fresh.submit(torch.get_num_threads).result() == 2
    fresh.shutdown()
    serial = Pieces(1)
    assert serial.map(lambda k: torch.get_num_threads(), range(3)) == [2, 2, 2]
    assert serial.submit(lambda: 7).result() == 7 and serial.workers == 1


@pytest.mark.usefixtures("two_torch_threads")
def test_features_on_two_threads_equal_features_on_one() -> None:
    """Pieces on two threads compute exactly what they compute in turn: each runs on one torch thread."""
    gen = torch.Generator().manual_seed(5)
    plane = torch.rand(97, 130, generator=gen, dtype=torch.float64) * 255
    two = nrqm_features(plane)
    torch.set_num_threads(1)
    one = nrqm_features(plane)
    for a, b in zip(two, one, strict=True):
        assert torch.equal(a, b)


def _grown_forest(rng: np.random.Generator, n_features: int, n_tree: int, n_rows: int) -> dict[str, Any]:
    """Unbalanced trees as randomForest grows them (a node splits while it holds more than 5 samples, into two
    uneven parts), stored in shuffled rows of `n_rows`-row arrays (unused rows stay zero)."""
    out: dict[str, Any] = {
        "lDau": np.zeros((n_rows, n_tree), np.int32),
        "rDau": np.zeros((n_rows, n_tree), np.int32),
        "upper": np.zeros((n_rows, n_tree)),
        "avnode": np.zeros((n_rows, n_tree)),
        "mbest": np.zeros((n_rows, n_tree), np.int32),
    }
    for t in range(n_tree):
        sizes = [int(rng.integers(20, 120))]
        children: list[tuple[int, int]] = []
        k = 0
        while k < len(sizes):
            if sizes[k] > 5 and len(sizes) + 2 <= n_rows:
                left = int(rng.integers(1, sizes[k]))
                children.append((len(sizes), len(sizes) + 1))
                sizes += [left, sizes[k] - left]
            else:
                children.append((-1, -1))
            k += 1
        row = np.concatenate([[0], 1 + rng.permutation(n_rows - 1)])
        for node, (a, b) in enumerate(children):
            r = row[node]
            out["avnode"][r, t] = rng.normal()
            if a >= 0:
                out["lDau"][r, t], out["rDau"][r, t] = row[a] + 1, row[b] + 1
                out["mbest"][r, t] = rng.integers(n_features) + 1
                out["upper"][r, t] = rng.normal()
    return out


def _forest(fields: dict[str, Any]) -> Forest:
    return Forest(
        left=torch.from_numpy(fields["lDau"].astype(np.int64)),
        right=torch.from_numpy(fields["rDau"].astype(np.int64)),
        variable=torch.from_numpy(fields["mbest"].astype(np.int64)),
        threshold=torch.from_numpy(fields["upper"]),
        value=torch.from_numpy(fields["avnode"]),
    )


def test_forest_set_equals_tree_by_tree_walk() -> None:
    rng = np.random.default_rng(8)
    # Different tree counts and node rows per forest, so the padding and the per-forest means are exercised.
    raw = [
        _grown_forest(rng, n, n_tree, rows) for n, n_tree, rows in zip(SIZES, (7, 3, 12), (90, 250, 40), strict=True)
    ]
    # A malformed tree that loops between two nodes: the walk stops after one step per node row, as pyiqa's does.
    loop = raw[2]
    loop["lDau"][:, 0], loop["rDau"][:, 0] = 0, 0
    loop["lDau"][0, 0] = loop["rDau"][0, 0] = 2
    loop["lDau"][1, 0] = loop["rDau"][1, 0] = 1
    loop["mbest"][:2, 0] = 1
    forests = tuple(_forest(f) for f in raw)
    combined = ForestSet.of(forests, SIZES)
    for _ in range(30):
        feats = [rng.normal(size=n) for n in SIZES]
        got = combined.predict(torch.from_numpy(np.concatenate(feats)))
        want = [
            np.mean([reference.walk_tree(f, t, x) for t in range(f["lDau"].shape[1])])
            for f, x in zip(raw, feats, strict=True)
        ]
        assert got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
        for g, forest, x in zip(got, forests, feats, strict=True):
            assert abs(float(g) - float(forest.predict(torch.from_numpy(x)))) <= 1e-12


@pytest.mark.parametrize(("shape", "size"), [((32, 32), (64, 64)), ((17, 40), (33, 80)), ((95, 126), (189, 251))])
def test_resize_f32_bit_identical_to_general_indexing(shape: tuple[int, int], size: tuple[int, int]) -> None:
    """The float32 result depends on the exact products and their summation order: it must not move by a bit."""
    gen = torch.Generator().manual_seed(size[0])
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 30
    assert torch.equal(resize_f32(x, size), reference.resize_f32(x, size))


def test_ggd_shape_equals_argmin_over_the_grid() -> None:
    gen = torch.Generator().manual_seed(3)
    gamma, table = _ggd_table()
    # Rows from heavy- to light-tailed, plus rows whose ρ sits exactly on grid values and beyond both ends.
    x = torch.randn(200, 48, generator=gen, dtype=torch.float64) ** 3 * torch.rand(
        200, 1, generator=gen, dtype=torch.float64
    )
    got = ggd_shape(x)
    mean = x.mean(dim=-1, keepdim=True)
    rho = x.var(dim=-1, keepdim=True) / ((x - mean).abs().mean(dim=-1, keepdim=True) ** 2 + 1e-7)
    want = gamma[(rho - table[None]).abs().argmin(dim=-1)]
    assert torch.equal(got, want)

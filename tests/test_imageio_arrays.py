"""Pixels in and out of arrays: `pixels_sha256`, `save_png` (exact round trips, atomic replacement, bad arrays
refused) and the tensor conversions (shared memory, copies only when needed, bad inputs refused)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from image_files import (
    NOISE_GRAY,
    NOISE_RGB,
    save,
)
from PIL import Image

from sreval.errors import SrevalError
from sreval.imageio import (
    from_tensor,
    load_image,
    pixels_sha256,
    save_png,
    to_tensor,
)

# --- pixels_sha256 --------------------------------------------------------------------------------------------


def test_pixels_sha256_ignores_encoding_but_not_shape_or_dtype(tmp_path: Path) -> None:
    fast = load_image(save(tmp_path / "fast.png", Image.fromarray(NOISE_RGB), compress_level=0))
    small = load_image(save(tmp_path / "small.png", Image.fromarray(NOISE_RGB), compress_level=9))
    assert fast.sha256 != small.sha256
    assert pixels_sha256(fast.pixels) == pixels_sha256(small.pixels) == pixels_sha256(NOISE_RGB)
    assert pixels_sha256(NOISE_RGB) != pixels_sha256(NOISE_RGB.reshape(32, 24, 3))
    assert pixels_sha256(NOISE_RGB) != pixels_sha256(NOISE_RGB.view(np.int8))
    flipped = NOISE_RGB[::-1]
    assert pixels_sha256(flipped) == pixels_sha256(flipped.copy())


# --- save_png -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("array", [NOISE_RGB, NOISE_GRAY[..., None], NOISE_GRAY, NOISE_RGB[::-1, ::2]])
def test_save_png_round_trips(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "new" / "folder" / "out.png"
    save_png(path, array)
    loaded = load_image(path)
    assert np.array_equal(loaded.pixels, array.reshape(*array.shape[:2], -1))
    assert [p.name for p in path.parent.iterdir()] == ["out.png"]  # no temporary file left behind


def test_save_png_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out.png"
    save_png(path, NOISE_RGB)
    save_png(path, NOISE_GRAY)
    assert np.array_equal(load_image(path).pixels[..., 0], NOISE_GRAY)


@pytest.mark.parametrize(
    ("pixels", "fragment"),
    [
        (NOISE_RGB.astype(np.float32) / 255, "dtype float32"),
        (NOISE_RGB.astype(np.uint16), "dtype uint16"),
        (np.zeros((4, 4, 2), np.uint8), "shape (4, 4, 2)"),
        (np.zeros((4, 4, 4), np.uint8), "shape (4, 4, 4)"),
        (np.zeros((1, 4, 4, 3), np.uint8), "shape (1, 4, 4, 3)"),
        (np.zeros((0, 4, 3), np.uint8), "shape (0, 4, 3)"),
        (np.zeros(4, np.uint8), "shape (4,)"),
        ([[0, 1]], "numpy array"),
    ],
)
def test_save_png_refuses_bad_arrays(tmp_path: Path, pixels: np.ndarray, fragment: str) -> None:
    path = tmp_path / "out.png"
    with pytest.raises(SrevalError, match=r"out\.png") as caught:
        save_png(path, pixels)
    assert fragment in str(caught.value)
    assert not path.exists()


def test_save_png_onto_a_directory_fails_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "taken.png"
    target.mkdir()
    with pytest.raises(SrevalError, match=r"taken\.png"):
        save_png(target, NOISE_RGB)
    assert [p.name for p in tmp_path.iterdir()] == ["taken.png"]


# --- tensors --------------------------------------------------------------------------------------------------


def test_tensor_round_trip_shares_memory() -> None:
    pixels = NOISE_RGB.copy()
    tensor = to_tensor(pixels)
    assert (tensor.shape, tensor.dtype) == ((1, 3, 24, 32), torch.uint8)
    assert tensor.data_ptr() == pixels.ctypes.data
    assert torch.equal(tensor[0, 1], torch.from_numpy(NOISE_RGB[..., 1]))
    back = from_tensor(tensor)
    assert back.flags.c_contiguous and np.array_equal(back, NOISE_RGB)
    assert np.array_equal(from_tensor(tensor[0]), NOISE_RGB)


def test_to_tensor_copies_only_read_only_or_strided_arrays() -> None:
    read_only = NOISE_GRAY[..., None].copy()
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when handed read-only memory
        assert torch.equal(to_tensor(read_only)[0, 0], torch.from_numpy(NOISE_GRAY))
    flipped = NOISE_RGB[::-1]
    assert np.array_equal(from_tensor(to_tensor(flipped)), flipped)


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        (torch.zeros(1, 3, 4, 4), "torch.float32"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.int16), "torch.int16"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "(2, 3, 4, 4)"),
        (torch.zeros(1, 4, 4, 4, dtype=torch.uint8), "(1, 4, 4, 4)"),
        (torch.zeros(4, 4, dtype=torch.uint8), "(4, 4)"),
    ],
)
def test_from_tensor_refuses_bad_tensors(tensor: torch.Tensor, fragment: str) -> None:
    with pytest.raises(SrevalError, match="from_tensor") as caught:
        from_tensor(tensor)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("pixels", [NOISE_GRAY, NOISE_RGB.astype(np.float32), np.zeros((4, 4, 2), np.uint8)])
def test_to_tensor_refuses_bad_arrays(pixels: np.ndarray) -> None:
    with pytest.raises(SrevalError, match="to_tensor"):
        to_tensor(pixels)

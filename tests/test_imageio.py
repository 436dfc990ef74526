"""Every odd image file is either loaded exactly or refused with one SrevalError naming the file."""

from __future__ import annotations

import hashlib
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from sreval.errors import SrevalError
from sreval.imageio import (
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    from_tensor,
    load_image,
    pixels_sha256,
    save_png,
    to_tensor,
)

RNG = np.random.default_rng(0)
NOISE_RGB = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
NOISE_GRAY = RNG.integers(0, 256, (24, 32), dtype=np.uint8)


def _refused(path: Path, *fragments: str, **kwargs: int) -> str:
    """Load `path`, expect SrevalError naming it and containing `fragments`; return the message."""
    with pytest.raises(SrevalError) as caught:
        load_image(path, **kwargs)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


def _save(path: Path, image: Image.Image, **params: Any) -> Path:
    image.save(path, **params)
    return path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _raw_png(samples: np.ndarray, bit_depth: int, colour_type: int) -> bytes:
    """A PNG written by hand, for what Pillow cannot write (16-bit RGB/RGBA)."""
    height, width = samples.shape[:2]
    big_endian = samples.astype(samples.dtype.newbyteorder(">")).reshape(height, -1)
    rows = b"".join(b"\x00" + row.tobytes() for row in big_endian)  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _claim_png_size(data: bytes, width: int, height: int) -> bytes:
    """The same PNG with its IHDR claiming another size (CRC fixed), as a decompression bomb would."""
    ihdr = bytearray(data[12:29])  # chunk type + 13-byte body
    struct.pack_into(">II", ihdr, 4, width, height)
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def _claim_bmp_size(path: Path, width: int, height: int) -> Path:
    data = bytearray(path.read_bytes())
    struct.pack_into("<ii", data, 18, width, height)
    path.write_bytes(bytes(data))
    return path


def _tiff_rgb16(width: int, height: int) -> bytes:
    """A little-endian 16-bit RGB TIFF written by hand (Pillow cannot write one, but opens it as 8-bit RGB)."""
    pixels = np.full((height, width, 3), 40000, dtype="<u2").tobytes()
    entries = 9
    bits_offset = 8 + 2 + 12 * entries + 4
    data_offset = bits_offset + 6
    tags = [  # (tag, type: 3 SHORT / 4 LONG, count, value or offset)
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, 3, bits_offset),
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 2),  # RGB
        (273, 4, 1, data_offset),
        (277, 3, 1, 3),
        (278, 3, 1, height),
        (279, 4, 1, len(pixels)),
    ]
    ifd = struct.pack("<H", entries)
    for tag, kind, count, value in tags:
        inline = struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + inline
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4 + struct.pack("<HHH", 16, 16, 16) + pixels


# --- files that are not images -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    _refused(tmp_path / "nope.png", "no such file")


def test_directory(tmp_path: Path) -> None:
    _refused(tmp_path, "directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _refused(path, "empty", "PNG")


@pytest.mark.parametrize(
    ("name", "content"),
    [("notes.png", b"hello, this is text\n"), ("image.ppm", b"P6 1 1 255\n\x00\x00\x00")],
)
def test_non_image_or_unsupported_format(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    _refused(path, "not a PNG, JPEG, BMP, TIFF, GIF or WebP image")


# --- damaged files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.005, 0.25, 0.5, 0.9, -12, -1])
def test_truncated_png(tmp_path: Path, keep: float) -> None:
    data = _save(tmp_path / "full.png", Image.fromarray(NOISE_RGB)).read_bytes()
    cut = int(len(data) * keep) if keep > 0 else len(data) + int(keep)  # negative: drop that many end bytes
    path = tmp_path / "cut.png"
    path.write_bytes(data[:cut])
    _refused(path, "truncated or corrupt")


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = _save(tmp_path / "full.jpg", Image.fromarray(NOISE_RGB), quality=95).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    _refused(path, "truncated or corrupt")


def test_truncated_files_are_refused_without_touching_pillow_globals(tmp_path: Path) -> None:
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS, list(warnings.filters))
    load_image(_save(tmp_path / "ok.png", Image.fromarray(NOISE_RGB)))
    assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS, list(warnings.filters)) == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_refuses_to_load_while_other_code_enabled_load_truncated_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(tmp_path / "ok.png", Image.fromarray(NOISE_RGB))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    _refused(path, "LOAD_TRUNCATED_IMAGES")


# --- decompression bombs --------------------------------------------------------------------------------------


def test_png_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    data = _save(tmp_path / "tiny.png", Image.new("L", (1, 1))).read_bytes()
    path = tmp_path / "bomb.png"
    path.write_bytes(_claim_png_size(data, 50_000, 50_000))
    _refused(path, "50000x50000", "2,500,000,000", f"{DEFAULT_MAX_PIXELS:,}", "max_pixels")


def test_bomb_in_another_format_is_refused_before_decoding(tmp_path: Path) -> None:
    path = _claim_bmp_size(_save(tmp_path / "bomb.bmp", Image.new("L", (2, 2))), 12_000, 10_000)
    _refused(path, "12000x10000", "100,000,000", "max_pixels")


def test_bomb_above_pillows_hard_limit(tmp_path: Path) -> None:
    path = _claim_bmp_size(_save(tmp_path / "bomb.bmp", Image.new("L", (2, 2))), 20_000, 20_000)
    _refused(path, "400000000 pixels")


def test_max_pixels_is_ours_not_pillows_warning_threshold(tmp_path: Path) -> None:
    # 90.25 MP is above Pillow's warning threshold (~89.5 MP) but within max_pixels: the size check must pass,
    # Pillow's warning must neither escape nor refuse the file; it is then refused for its missing pixel data.
    path = _claim_bmp_size(_save(tmp_path / "big.bmp", Image.new("L", (2, 2))), 9_500, 9_500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _refused(path, "truncated or corrupt")


def test_small_max_pixels(tmp_path: Path) -> None:
    path = _save(tmp_path / "ok.png", Image.fromarray(NOISE_RGB))
    _refused(path, "32x24", "above the limit of 100", max_pixels=100)
    assert load_image(path, max_pixels=32 * 24).size == (32, 24)


# --- bit depth ------------------------------------------------------------------------------------------------


def test_16bit_gray_png(tmp_path: Path) -> None:
    path = _save(tmp_path / "gray16.png", Image.fromarray(np.full((4, 5), 1000, dtype=np.uint16)))
    _refused(path, "16-bit grayscale", "8-bit")


@pytest.mark.parametrize(("channels", "colour_type", "kind"), [(3, 2, "16-bit RGB"), (4, 6, "16-bit RGBA")])
def test_16bit_colour_png(tmp_path: Path, channels: int, colour_type: int, kind: str) -> None:
    path = tmp_path / "colour16.png"
    path.write_bytes(_raw_png(np.full((4, 5, channels), 40000, dtype=np.uint16), 16, colour_type))
    with Image.open(path) as image:  # why the IHDR is read directly: Pillow reports plain 8-bit modes
        assert image.mode in ("RGB", "RGBA")
    _refused(path, kind, "8-bit")


def test_16bit_rgb_tiff(tmp_path: Path) -> None:
    path = tmp_path / "rgb16.tif"
    path.write_bytes(_tiff_rgb16(5, 4))
    with Image.open(path) as image:
        assert image.mode == "RGB"
    _refused(path, "16-bit", "8-bit")


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        (Image.fromarray(np.full((4, 5), 1000, dtype=np.uint16)), "16-bit"),
        (Image.new("I", (5, 4)), "mode I"),
        (Image.new("F", (5, 4)), "mode F"),
    ],
)
def test_deep_tiff(tmp_path: Path, image: Image.Image, fragment: str) -> None:
    _refused(_save(tmp_path / "deep.tif", image), fragment, "8-bit")


# --- alpha, palette, 1-bit, grayscale, RGB --------------------------------------------------------------------


def test_opaque_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.dstack([NOISE_RGB, np.full(NOISE_RGB.shape[:2], 255, np.uint8)])
    loaded = load_image(_save(tmp_path / "rgba.png", Image.fromarray(rgba)))
    assert np.array_equal(loaded.pixels, NOISE_RGB)


def test_opaque_la_drops_alpha(tmp_path: Path) -> None:
    la = np.dstack([NOISE_GRAY, np.full(NOISE_GRAY.shape, 255, np.uint8)])
    loaded = load_image(_save(tmp_path / "la.png", Image.fromarray(la, mode="LA")))
    assert np.array_equal(loaded.pixels, NOISE_GRAY[..., None])


def test_transparent_pixels_are_refused_with_their_count(tmp_path: Path) -> None:
    rgba = np.dstack([NOISE_RGB, np.full(NOISE_RGB.shape[:2], 255, np.uint8)])
    rgba[0, :3, 3] = [0, 128, 254]
    _refused(_save(tmp_path / "rgba.png", Image.fromarray(rgba)), "3 of its 768 pixels are not fully opaque")


def test_png_colour_key_transparency(tmp_path: Path) -> None:
    rgb = NOISE_RGB.copy()
    rgb[0, 0] = rgb[5, 5] = [1, 2, 3]
    path = _save(tmp_path / "trns.png", Image.fromarray(rgb), transparency=(1, 2, 3))
    _refused(path, "2 of its 768 pixels are not fully opaque")
    rgb[0, 0] = rgb[5, 5] = [4, 5, 6]  # key colour no longer present: nothing is transparent
    path = _save(tmp_path / "unused_trns.png", Image.fromarray(rgb), transparency=(1, 2, 3))
    assert np.array_equal(load_image(path).pixels, rgb)


def _palette_image() -> tuple[Image.Image, np.ndarray]:
    indices = RNG.integers(0, 4, (6, 7), dtype=np.uint8)
    palette = np.array([[0, 0, 0], [255, 0, 0], [10, 20, 30], [200, 200, 200]], dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette(palette.ravel().tolist())
    return image, palette[indices]


def test_palette_becomes_rgb(tmp_path: Path) -> None:
    image, expected = _palette_image()
    for name in ("p.png", "p.gif", "p.bmp"):
        loaded = load_image(_save(tmp_path / name, image))
        assert loaded.channels == 3
        assert np.array_equal(loaded.pixels, expected), name


def test_palette_transparency(tmp_path: Path) -> None:
    image, expected = _palette_image()
    used = int(np.count_nonzero(np.asarray(image) == 2))
    _refused(_save(tmp_path / "p.png", image, transparency=2), f"{used} of its 42 pixels are not fully opaque")
    unused = image.copy()
    palette = image.getpalette()
    assert palette is not None
    unused.putpalette(np.asarray([*palette[:12], 9, 9, 9], dtype=np.uint8).tolist())
    loaded = load_image(_save(tmp_path / "unused.png", unused, transparency=4))
    assert np.array_equal(loaded.pixels, expected)


def test_one_bit_becomes_gray_0_255(tmp_path: Path) -> None:
    bits = NOISE_GRAY > 127
    loaded = load_image(_save(tmp_path / "bits.png", Image.fromarray(bits)))
    assert loaded.channels == 1
    assert np.array_equal(loaded.pixels[..., 0], np.where(bits, 255, 0))


def test_gray_is_one_channel_and_rgb_is_never_collapsed(tmp_path: Path) -> None:
    gray = load_image(_save(tmp_path / "gray.png", Image.fromarray(NOISE_GRAY)))
    assert gray.pixels.shape == (24, 32, 1)
    assert np.array_equal(gray.pixels[..., 0], NOISE_GRAY)
    equal_channels = np.repeat(NOISE_GRAY[..., None], 3, axis=2)
    rgb = load_image(_save(tmp_path / "rgb.png", Image.fromarray(equal_channels)))
    assert rgb.channels == 3
    assert np.array_equal(rgb.pixels, equal_channels)


@pytest.mark.parametrize(
    ("name", "mode"), [("cmyk.jpg", "CMYK"), ("cmyk.tif", "CMYK"), ("lab.tif", "LAB"), ("ycc.tif", "YCbCr")]
)
def test_other_colour_modes_are_refused(tmp_path: Path, name: str, mode: str) -> None:
    _refused(_save(tmp_path / name, Image.new(mode, (5, 4))), f"colour mode {mode}")


@pytest.mark.parametrize("name", ["anim.gif", "anim.png", "pages.tif", "anim.webp"])
def test_multi_frame_files_are_refused(tmp_path: Path, name: str) -> None:
    frames = [Image.new("RGB", (5, 4), colour) for colour in ("red", "green", "blue")]
    _refused(_save(tmp_path / name, frames[0], save_all=True, append_images=frames[1:]), "3 frames")


# --- formats that load ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rgb.bmp", "rgb.tif", "rgb.webp"])
def test_lossless_formats_load_exactly(tmp_path: Path, name: str) -> None:
    loaded = load_image(_save(tmp_path / name, Image.fromarray(NOISE_RGB), lossless=True))
    assert np.array_equal(loaded.pixels, NOISE_RGB)


@pytest.mark.parametrize(("array", "mode"), [(NOISE_RGB, "RGB"), (NOISE_GRAY, "L")])
def test_jpeg_loads_as_decoded(tmp_path: Path, array: np.ndarray, mode: str) -> None:
    path = _save(tmp_path / "image.jpg", Image.fromarray(array), quality=90)
    with Image.open(path) as image:
        expected = np.asarray(image).reshape(24, 32, -1)
    loaded = load_image(path)
    assert np.array_equal(loaded.pixels, expected)
    assert loaded.channels == (3 if mode == "RGB" else 1)


def test_exif_orientation_is_not_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(tmp_path / "rotated.jpg", Image.fromarray(NOISE_RGB), exif=exif)
    assert load_image(path).size == (32, 24)


def test_loaded_image_fields(tmp_path: Path) -> None:
    path = _save(tmp_path / "rgb.png", Image.fromarray(NOISE_RGB))
    loaded = load_image(str(path))
    assert isinstance(loaded, LoadedImage)
    assert loaded.path == path
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.pixels.dtype == np.uint8
    assert loaded.pixels.flags.c_contiguous
    assert (loaded.channels, loaded.size) == (3, (32, 24))
    assert loaded != load_image(path)  # compared by identity: elementwise array comparison would raise


# --- pixels_sha256 --------------------------------------------------------------------------------------------


def test_pixels_sha256_ignores_encoding_but_not_shape_or_dtype(tmp_path: Path) -> None:
    fast = load_image(_save(tmp_path / "fast.png", Image.fromarray(NOISE_RGB), compress_level=0))
    small = load_image(_save(tmp_path / "small.png", Image.fromarray(NOISE_RGB), compress_level=9))
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

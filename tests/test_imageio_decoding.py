"""Every odd image file that loads is loaded exactly: bit depths, alpha, palettes, 1-bit, grayscale and RGB, the
lossless formats and JPEG as decoded; what cannot be loaded exactly (transparency, other modes, several frames)
is refused with one SrevalError naming the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from image_files import (
    NOISE_GRAY,
    NOISE_RGB,
    RNG,
    raw_png,
    refused,
    save,
    tiff_rgb16,
)
from PIL import Image

from sreval.imageio import (
    LoadedImage,
    load_image,
)

# --- bit depth ------------------------------------------------------------------------------------------------


def test_16bit_gray_png(tmp_path: Path) -> None:
    path = save(tmp_path / "gray16.png", Image.fromarray(np.full((4, 5), 1000, dtype=np.uint16)))
    refused(path, "16-bit grayscale", "8-bit")


@pytest.mark.parametrize(("channels", "colour_type", "kind"), [(3, 2, "16-bit RGB"), (4, 6, "16-bit RGBA")])
def test_16bit_colour_png(tmp_path: Path, channels: int, colour_type: int, kind: str) -> None:
    path = tmp_path / "colour16.png"
    path.write_bytes(raw_png(np.full((4, 5, channels), 40000, dtype=np.uint16), 16, colour_type))
    with Image.open(path) as image:  # why the IHDR is read directly: Pillow reports plain 8-bit modes
        assert image.mode in ("RGB", "RGBA")
    refused(path, kind, "8-bit")


def test_16bit_rgb_tiff(tmp_path: Path) -> None:
    path = tmp_path / "rgb16.tif"
    path.write_bytes(tiff_rgb16(5, 4))
    with Image.open(path) as image:
        assert image.mode == "RGB"
    refused(path, "16-bit", "8-bit")


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        (Image.fromarray(np.full((4, 5), 1000, dtype=np.uint16)), "16-bit"),
        (Image.new("I", (5, 4)), "mode I"),
        (Image.new("F", (5, 4)), "mode F"),
    ],
)
def test_deep_tiff(tmp_path: Path, image: Image.Image, fragment: str) -> None:
    refused(save(tmp_path / "deep.tif", image), fragment, "8-bit")


# --- alpha, palette, 1-bit, grayscale, RGB --------------------------------------------------------------------


def test_opaque_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.dstack([NOISE_RGB, np.full(NOISE_RGB.shape[:2], 255, np.uint8)])
    loaded = load_image(save(tmp_path / "rgba.png", Image.fromarray(rgba)))
    assert np.array_equal(loaded.pixels, NOISE_RGB)


def test_opaque_la_drops_alpha(tmp_path: Path) -> None:
    la = np.dstack([NOISE_GRAY, np.full(NOISE_GRAY.shape, 255, np.uint8)])
    loaded = load_image(save(tmp_path / "la.png", Image.fromarray(la, mode="LA")))
    assert np.array_equal(loaded.pixels, NOISE_GRAY[..., None])


def test_transparent_pixels_are_refused_with_their_count(tmp_path: Path) -> None:
    rgba = np.dstack([NOISE_RGB, np.full(NOISE_RGB.shape[:2], 255, np.uint8)])
    rgba[0, :3, 3] = [0, 128, 254]
    refused(save(tmp_path / "rgba.png", Image.fromarray(rgba)), "3 of its 768 pixels are not fully opaque")


def test_png_colour_key_transparency(tmp_path: Path) -> None:
    rgb = NOISE_RGB.copy()
    rgb[0, 0] = rgb[5, 5] = [1, 2, 3]
    path = save(tmp_path / "trns.png", Image.fromarray(rgb), transparency=(1, 2, 3))
    refused(path, "2 of its 768 pixels are not fully opaque")
    rgb[0, 0] = rgb[5, 5] = [4, 5, 6]  # key colour no longer present: nothing is transparent
    path = save(tmp_path / "unused_trns.png", Image.fromarray(rgb), transparency=(1, 2, 3))
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
        loaded = load_image(save(tmp_path / name, image))
        assert loaded.channels == 3
        assert np.array_equal(loaded.pixels, expected), name


def test_palette_transparency(tmp_path: Path) -> None:
    image, expected = _palette_image()
    used = int(np.count_nonzero(np.asarray(image) == 2))
    refused(save(tmp_path / "p.png", image, transparency=2), f"{used} of its 42 pixels are not fully opaque")
    unused = image.copy()
    palette = image.getpalette()
    assert palette is not None
    unused.putpalette(np.asarray([*palette[:12], 9, 9, 9], dtype=np.uint8).tolist())
    loaded = load_image(save(tmp_path / "unused.png", unused, transparency=4))
    assert np.array_equal(loaded.pixels, expected)


def test_one_bit_becomes_gray_0_255(tmp_path: Path) -> None:
    bits = NOISE_GRAY > 127
    loaded = load_image(save(tmp_path / "bits.png", Image.fromarray(bits)))
    assert loaded.channels == 1
    assert np.array_equal(loaded.pixels[..., 0], np.where(bits, 255, 0))


def test_gray_is_one_channel_and_rgb_is_never_collapsed(tmp_path: Path) -> None:
    gray = load_image(save(tmp_path / "gray.png", Image.fromarray(NOISE_GRAY)))
    assert gray.pixels.shape == (24, 32, 1)
    assert np.array_equal(gray.pixels[..., 0], NOISE_GRAY)
    equal_channels = np.repeat(NOISE_GRAY[..., None], 3, axis=2)
    rgb = load_image(save(tmp_path / "rgb.png", Image.fromarray(equal_channels)))
    assert rgb.channels == 3
    assert np.array_equal(rgb.pixels, equal_channels)


@pytest.mark.parametrize(
    ("name", "mode"), [("cmyk.jpg", "CMYK"), ("cmyk.tif", "CMYK"), ("lab.tif", "LAB"), ("ycc.tif", "YCbCr")]
)
def test_other_colour_modes_are_refused(tmp_path: Path, name: str, mode: str) -> None:
    refused(save(tmp_path / name, Image.new(mode, (5, 4))), f"colour mode {mode}")


@pytest.mark.parametrize("name", ["anim.gif", "anim.png", "pages.tif", "anim.webp"])
def test_multi_frame_files_are_refused(tmp_path: Path, name: str) -> None:
    frames = [Image.new("RGB", (5, 4), colour) for colour in ("red", "green", "blue")]
    refused(save(tmp_path / name, frames[0], save_all=True, append_images=frames[1:]), "3 frames")


# --- formats that load ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rgb.bmp", "rgb.tif", "rgb.webp"])
def test_lossless_formats_load_exactly(tmp_path: Path, name: str) -> None:
    loaded = load_image(save(tmp_path / name, Image.fromarray(NOISE_RGB), lossless=True))
    assert np.array_equal(loaded.pixels, NOISE_RGB)


@pytest.mark.parametrize(("array", "mode"), [(NOISE_RGB, "RGB"), (NOISE_GRAY, "L")])
def test_jpeg_loads_as_decoded(tmp_path: Path, array: np.ndarray, mode: str) -> None:
    path = save(tmp_path / "image.jpg", Image.fromarray(array), quality=90)
    with Image.open(path) as image:
        expected = np.asarray(image).reshape(24, 32, -1)
    loaded = load_image(path)
    assert np.array_equal(loaded.pixels, expected)
    assert loaded.channels == (3 if mode == "RGB" else 1)


def test_exif_orientation_is_not_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save(tmp_path / "rotated.jpg", Image.fromarray(NOISE_RGB), exif=exif)
    assert load_image(path).size == (32, 24)


def test_loaded_image_fields(tmp_path: Path) -> None:
    path = save(tmp_path / "rgb.png", Image.fromarray(NOISE_RGB))
    loaded = load_image(str(path))
    assert isinstance(loaded, LoadedImage)
    assert loaded.path == path
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.pixels.dtype == np.uint8
    assert loaded.pixels.flags.c_contiguous
    assert (loaded.channels, loaded.size) == (3, (32, 24))
    assert loaded != load_image(path)  # compared by identity: elementwise array comparison would raise

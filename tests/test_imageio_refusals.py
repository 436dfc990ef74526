"""Every file that is not a loadable image (no image at all, damaged, a decompression bomb) is refused with one
SrevalError naming the file, before anything is decoded where possible."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from image_files import (
    NOISE_RGB,
    claim_bmp_size,
    claim_png_size,
    refused,
    save,
)
from PIL import Image, ImageFile

from sreval.imageio import (
    DEFAULT_MAX_PIXELS,
    load_image,
)

# --- files that are not images -------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.png", "no such file")


def test_directory(tmp_path: Path) -> None:
    refused(tmp_path, "directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    refused(path, "empty", "PNG")


@pytest.mark.parametrize(
    ("name", "content"),
    [("notes.png", b"hello, this is text\n"), ("image.ppm", b"P6 1 1 255\n\x00\x00\x00")],
)
def test_non_image_or_unsupported_format(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    refused(path, "not a PNG, JPEG, BMP, TIFF, GIF or WebP image")


# --- damaged files --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.005, 0.25, 0.5, 0.9, -12, -1])
def test_truncated_png(tmp_path: Path, keep: float) -> None:
    data = save(tmp_path / "full.png", Image.fromarray(NOISE_RGB)).read_bytes()
    cut = int(len(data) * keep) if keep > 0 else len(data) + int(keep)  # negative: drop that many end bytes
    path = tmp_path / "cut.png"
    path.write_bytes(data[:cut])
    refused(path, "truncated or corrupt")


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = save(tmp_path / "full.jpg", Image.fromarray(NOISE_RGB), quality=95).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    refused(path, "truncated or corrupt")


def test_truncated_files_are_refused_without_touching_pillow_globals(tmp_path: Path) -> None:
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS, list(warnings.filters))
    load_image(save(tmp_path / "ok.png", Image.fromarray(NOISE_RGB)))
    assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS, list(warnings.filters)) == before
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_refuses_to_load_while_other_code_enabled_load_truncated_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(tmp_path / "ok.png", Image.fromarray(NOISE_RGB))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    refused(path, "LOAD_TRUNCATED_IMAGES")


# --- decompression bombs --------------------------------------------------------------------------------------


def test_png_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    data = save(tmp_path / "tiny.png", Image.new("L", (1, 1))).read_bytes()
    path = tmp_path / "bomb.png"
    path.write_bytes(claim_png_size(data, 50_000, 50_000))
    refused(path, "50000x50000", "2,500,000,000", f"{DEFAULT_MAX_PIXELS:,}", "max_pixels")


def test_bomb_in_another_format_is_refused_before_decoding(tmp_path: Path) -> None:
    path = claim_bmp_size(save(tmp_path / "bomb.bmp", Image.new("L", (2, 2))), 12_000, 10_000)
    refused(path, "12000x10000", "100,000,000", "max_pixels")


def test_bomb_above_pillows_hard_limit(tmp_path: Path) -> None:
    path = claim_bmp_size(save(tmp_path / "bomb.bmp", Image.new("L", (2, 2))), 20_000, 20_000)
    refused(path, "400000000 pixels")


def test_max_pixels_is_ours_not_pillows_warning_threshold(tmp_path: Path) -> None:
    # 90.25 MP is above Pillow's warning threshold (~89.5 MP) but within max_pixels: the size check must pass,
    # Pillow's warning must neither escape nor refuse the file; it is then refused for its missing pixel data.
    path = claim_bmp_size(save(tmp_path / "big.bmp", Image.new("L", (2, 2))), 9_500, 9_500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refused(path, "truncated or corrupt")


def test_small_max_pixels(tmp_path: Path) -> None:
    path = save(tmp_path / "ok.png", Image.fromarray(NOISE_RGB))
    refused(path, "32x24", "above the limit of 100", max_pixels=100)
    assert load_image(path, max_pixels=32 * 24).size == (32, 24)

"""Image files written by hand or by Pillow for the imageio tests: noise pixels, the odd PNG, BMP and TIFF
files Pillow cannot write (16-bit colour) or would not (a header claiming another size), and the check that a
file is refused with one SrevalError naming it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sreval.errors import SrevalError
from sreval.imageio import load_image

RNG = np.random.default_rng(0)
NOISE_RGB = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
NOISE_GRAY = RNG.integers(0, 256, (24, 32), dtype=np.uint8)


def refused(path: Path, *fragments: str, **kwargs: int) -> str:
    """Load `path`, expect SrevalError naming it and containing `fragments`; return the message."""
    with pytest.raises(SrevalError) as caught:
        load_image(path, **kwargs)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


def save(path: Path, image: Image.Image, **params: Any) -> Path:
    image.save(path, **params)
    return path


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_png(samples: np.ndarray, bit_depth: int, colour_type: int) -> bytes:
    """A PNG written by hand, for what Pillow cannot write (16-bit RGB/RGBA)."""
    height, width = samples.shape[:2]
    big_endian = samples.astype(samples.dtype.newbyteorder(">")).reshape(height, -1)
    rows = b"".join(b"\x00" + row.tobytes() for row in big_endian)  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def claim_png_size(data: bytes, width: int, height: int) -> bytes:
    """The same PNG with its IHDR claiming another size (CRC fixed), as a decompression bomb would."""
    ihdr = bytearray(data[12:29])  # chunk type + 13-byte body
    struct.pack_into(">II", ihdr, 4, width, height)
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def claim_bmp_size(path: Path, width: int, height: int) -> Path:
    data = bytearray(path.read_bytes())
    struct.pack_into("<ii", data, 18, width, height)
    path.write_bytes(bytes(data))
    return path


def tiff_rgb16(width: int, height: int) -> bytes:
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


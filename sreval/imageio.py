"""Loading and saving benchmark images with no silent surprises.

SR outputs come from arbitrary tools, so every file is either decoded to exactly the 8-bit pixels it stores, or
refused with one `SrevalError` that names the file, says what is wrong and what is allowed. Nothing that could
move a score is done quietly: no bit-depth reduction, no blending of transparent pixels over a background, no
colour-space conversion, no colour-profile handling, and no EXIF rotation. Benchmark pixels are taken as stored,
because the published protocols compare stored pixels, and rotating an SR output but not its HR reference (or
the reverse) would misalign the two images.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, TiffImagePlugin, UnidentifiedImageError

from sreval.errors import SrevalError

#: Refuse images with more pixels than this, read from the header before any pixel is decoded, so a small file
#: that claims a huge size (a decompression bomb) cannot exhaust memory. 100 MP is far above any SR benchmark.
DEFAULT_MAX_PIXELS: int = 100_000_000

#: Formats sreval reads, with the bytes their files start with (to tell a damaged image from a non-image).
#: Each gives 8-bit samples or lets us see its real bit depth. Others are refused because Pillow scales some of
#: them to 8 bits without saying so (16-bit PPM, 16-bit RGB JPEG 2000).
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "BMP": (b"BM",),
    "TIFF": (b"II*\x00", b"MM\x00*"),
    "GIF": (b"GIF87a", b"GIF89a"),
}
_FORMATS = (*_MAGIC, "WEBP")
_ALLOWED_FORMATS = "PNG, JPEG, BMP, TIFF, GIF or WebP"
_ALLOWED_MODES = "grayscale, RGB, 1-bit, palette, or grayscale/RGB with an alpha channel that is fully opaque"
_GRAY_MODES = frozenset({"1", "L", "LA"})
_COLOUR_MODES = frozenset({"P", "PA", "RGB", "RGBA"})
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk type and its constant CRC
_PNG_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}

#: What Pillow raises for damaged data, depending on the format and on where the damage is.
_CORRUPT_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


#: Formats whose files never hold the exact pixels that were saved (WebP can be either, so it is not listed).
LOSSY_FORMATS = frozenset({"JPEG"})


@dataclass(frozen=True, eq=False)  # eq=False: comparing or hashing ndarray fields elementwise would raise
class LoadedImage:
    """The 8-bit pixels of an image file, with the hash of the exact bytes they were decoded from."""

    path: Path
    pixels: np.ndarray  # uint8, (H, W, C) with C == 1 (grayscale) or 3 (RGB), C-contiguous
    sha256: str  # hex sha256 of the file's bytes
    format: str = ""  # the file's format as Pillow names it ("PNG", "JPEG", ...); "" when not read from a file

    @property
    def lossy(self) -> bool:
        """Whether the file's format always loses detail (JPEG): such outputs score below their own PNG."""
        return self.format in LOSSY_FORMATS

    @property
    def channels(self) -> int:
        """1 for grayscale, 3 for RGB."""
        return int(self.pixels.shape[2])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), in Pillow's order."""
        height, width = self.pixels.shape[:2]
        return int(width), int(height)


def load_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode one image file to uint8 (H, W, 1|3) pixels, or raise `SrevalError` saying why it cannot be scored.

    The file is read once; the hash and the pixels come from the same bytes, so a file rewritten meanwhile cannot
    pair one version's hash with another's pixels. Fully opaque alpha channels are dropped, palette images become
    RGB, 1-bit images become 0/255 grayscale; everything else unusual is refused rather than converted.
    """
    path = Path(path)
    data = _read_bytes(path)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Pillow would then pad a truncated file with gray pixels and we would score them without a word.
        raise _cannot_load(
            path,
            "Pillow's global PIL.ImageFile.LOAD_TRUNCATED_IMAGES was set to True by other code in this process, "
            "which makes truncated files decode silently; set it back to False",
        )
    png = _png_header(data)
    if png is not None:  # checked before Pillow: it reduces 16-bit RGB PNGs to 8 bits and decodes lazily anyway
        width, height, bit_depth, colour_type = png
        _check_size(path, width, height, max_pixels)
        if bit_depth > 8:
            kind = _PNG_COLOUR_TYPES.get(colour_type, f"colour type {colour_type}")
            raise _too_deep(path, f"{bit_depth}-bit {kind} samples (PNG)")
        if _PNG_END not in data:  # Pillow stops reading after the pixel data, so it misses a cut-off tail
            raise _cannot_load(path, "it is truncated or corrupt: the PNG has no end (IEND) chunk")
    with warnings.catch_warnings():
        # Pillow warns above its own global limit, which may be lower than `max_pixels`; our check decides.
        # (The filter is process-wide while it lasts; it only ever silences this one warning category.)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = _open(path, data)
        with image:
            _check_size(path, *image.size, max_pixels)
            _check_single_frame(path, image)
            _check_depth(path, image)
            pixels = _decode(path, image)
            kind = image.format or ""
    return LoadedImage(path=path, pixels=pixels, sha256=hashlib.sha256(data).hexdigest(), format=kind)


def pixels_sha256(pixels: np.ndarray) -> str:
    """Hash of decoded content: two encodings of the same pixels (compression level, metadata) hash equal.

    Shape and dtype are part of it, because the same bytes as 10x30 and 30x10, or as uint8 and int8, are
    different images.
    """
    digest = hashlib.sha256(f"{pixels.dtype.str} {tuple(pixels.shape)}\n".encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.hexdigest()


def save_png(
    path: str | os.PathLike[str], pixels: np.ndarray, *, compress_level: int = 6, durable: bool = True
) -> None:
    """Write uint8 (H, W, 1|3) or (H, W) pixels as a PNG that `load_image` reads back identically.

    `compress_level` (0-9) trades file size for time; caches use 1 (about 5x faster to write than 6).

    Atomic (a temporary file in the same folder, then `os.replace`), so an interrupted run never leaves a
    half-written PNG in a cache or results folder for a later run to trust. Parent folders are created.
    `durable=False` skips forcing the bytes to disk before the rename: after a power cut the file may then be
    missing or damaged (never silently wrong: a damaged PNG fails its checksums when read), which suits a
    cache that recomputes such entries.
    """
    path = Path(path)
    hwc = _as_hwc(pixels, f"cannot save image '{path}'", allow_2d=True)
    image = Image.fromarray(np.ascontiguousarray(hwc[..., 0] if hwc.shape[2] == 1 else hwc))
    # A named file opened with "x" rather than mkstemp, so the PNG gets the usual (umask) permissions, not 0600.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(temporary, "xb") as file:
                image.save(file, format="PNG", compress_level=compress_level)
                if durable:
                    file.flush()
                    os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as error:
        raise SrevalError(f"cannot save image '{path}': {error.strerror or error}") from error


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, C) -> uint8 (1, C, H, W), sharing memory with `pixels` where possible.

    The result is a channels-last view (call `.contiguous()` if a kernel needs NCHW memory). It stays uint8:
    the conversion to float, and its range, belong to the model or metric, where they are visible.
    """
    hwc = _as_hwc(pixels, "to_tensor", allow_2d=False)
    # torch.from_numpy needs C order and cannot protect read-only memory, so only those cases are copied.
    return torch.from_numpy(np.require(hwc, requirements=["C", "W"])).permute(2, 0, 1).unsqueeze(0)


def from_tensor(t: torch.Tensor) -> np.ndarray:
    """uint8 (1, C, H, W) or (C, H, W) tensor, on any device -> C-contiguous uint8 (H, W, C) array on the CPU.

    Float tensors are refused rather than quantised here: how values are rounded and clipped to 0..255 changes
    the scores, so the caller must do it explicitly.
    """
    if not isinstance(t, torch.Tensor):
        raise SrevalError(f"from_tensor: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.uint8:
        raise SrevalError(
            f"from_tensor: tensor has dtype {t.dtype}, expected torch.uint8; quantise explicitly first "
            "(round, clamp to 0..255, .to(torch.uint8)) so the rounding is a visible choice"
        )
    chw = t[0] if t.ndim == 4 and t.shape[0] == 1 else t
    if chw.ndim != 3 or chw.shape[0] not in (1, 3):
        raise SrevalError(
            f"from_tensor: tensor has shape {tuple(t.shape)}, expected (1, C, H, W) or (C, H, W) with C 1 or 3"
        )
    return np.ascontiguousarray(chw.detach().cpu().permute(1, 2, 0).numpy())


def _cannot_load(path: Path, reason: str) -> SrevalError:
    return SrevalError(f"cannot load image '{path}': {reason}")


def _too_deep(path: Path, what: str) -> SrevalError:
    return _cannot_load(
        path,
        f"it has {what}; sreval scores 8-bit images only (published SR protocols are 8-bit, and converting "
        "would change the numbers silently). Save it with 8 bits per channel",
    )


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise _cannot_load(path, "it is a directory, expected an image file")
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise _cannot_load(path, "no such file") from error
    except OSError as error:
        raise _cannot_load(path, f"the file cannot be read ({error.strerror or error})") from error
    if not data:
        raise _cannot_load(path, f"the file is empty (0 bytes); expected a {_ALLOWED_FORMATS} image")
    return data


def _png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk, or None if `data` has no PNG header."""
    if not data.startswith(_MAGIC["PNG"]) or len(data) < 26 or data[12:16] != b"IHDR":
        return None
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", data[16:26])
    return width, height, bit_depth, colour_type


def _sniff_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for name, magic in _MAGIC.items() if data.startswith(magic)), None)


def _open(path: Path, data: bytes) -> Image.Image:
    """Open lazily (header only) from memory, telling damaged images of allowed formats from anything else."""
    try:
        return Image.open(io.BytesIO(data), formats=_FORMATS)
    except Image.DecompressionBombError as error:  # Pillow's own hard limit, 2 * PIL.Image.MAX_IMAGE_PIXELS
        raise _cannot_load(
            path, f"{error} Pillow refuses images this large whatever max_pixels is; resize or split the image"
        ) from error
    except _CORRUPT_ERRORS as error:
        known = _sniff_format(data)
        if known is None:
            reason = f"it is not a {_ALLOWED_FORMATS} image (it starts with {data[:8]!r}); convert it to PNG"
        else:  # Pillow's own message for an unreadable header names a BytesIO object, not the file
            detail = "its header cannot be read" if isinstance(error, UnidentifiedImageError) else str(error)
            reason = f"it is truncated or corrupt: it starts like a {known} file, but {detail}"
        raise _cannot_load(path, reason) from error


def _check_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise _cannot_load(
            path,
            f"it is {width}x{height} = {width * height:,} pixels, above the limit of {max_pixels:,} "
            "(a guard against decompression bombs); if the image is genuine, pass a larger max_pixels",
        )


def _check_single_frame(path: Path, image: Image.Image) -> None:
    try:
        frames = getattr(image, "n_frames", 1)
    except _CORRUPT_ERRORS as error:
        raise _cannot_load(path, f"it is truncated or corrupt ({error})") from error
    if frames > 1:
        raise _cannot_load(
            path, f"it has {frames} frames (animation or multi-page file); expected a single still image"
        )


def _check_depth(path: Path, image: Image.Image) -> None:
    """Refuse samples deeper than 8 bits, including the 16-bit RGB TIFFs that Pillow opens as 8-bit RGB."""
    if image.mode.startswith("I;16"):
        raise _too_deep(path, f"16-bit samples (Pillow mode {image.mode})")
    if image.mode in ("I", "F"):
        kind = "integer" if image.mode == "I" else "floating-point"
        raise _too_deep(path, f"32-bit {kind} samples (Pillow mode {image.mode})")
    if isinstance(image, TiffImagePlugin.TiffImageFile):
        bits = image.tag_v2.get(258, 1)  # BitsPerSample: one value, or one per channel
        deepest = max(bits) if isinstance(bits, tuple) else bits
        if deepest > 8:
            raise _too_deep(path, f"{deepest}-bit samples (TIFF)")


def _decode(path: Path, image: Image.Image) -> np.ndarray:
    """Decode to uint8 (H, W, 1|3): convert only where the result is exact, refuse transparency."""
    mode = image.mode
    if mode not in _GRAY_MODES | _COLOUR_MODES:
        raise _cannot_load(
            path, f"it has colour mode {mode}; sreval accepts {_ALLOWED_MODES}. Convert it to RGB yourself"
        )
    # A tRNS chunk or GIF transparency index makes some pixels of an L, RGB or P image transparent.
    has_alpha = mode in ("LA", "PA", "RGBA") or image.info.get("transparency") is not None
    target = ("LA" if has_alpha else "L") if mode in _GRAY_MODES else ("RGBA" if has_alpha else "RGB")
    try:
        image.load()
        pixels = np.array(image if mode == target else image.convert(target), dtype=np.uint8)
    except _CORRUPT_ERRORS as error:
        raise _cannot_load(path, f"it is truncated or corrupt ({error}); re-export or re-copy the file") from error
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    if has_alpha:
        non_opaque = int(np.count_nonzero(pixels[..., -1] != 255))
        if non_opaque:
            raise _cannot_load(
                path,
                f"{non_opaque:,} of its {pixels.shape[0] * pixels.shape[1]:,} pixels are not fully opaque "
                "(alpha < 255); sreval scores opaque images only, because blending them over a background "
                "would invent pixel values. Remove the transparency first",
            )
        pixels = pixels[..., :-1]
    return np.ascontiguousarray(pixels)


def _as_hwc(pixels: object, context: str, *, allow_2d: bool) -> np.ndarray:
    """`pixels` as uint8 (H, W, 1|3), or `SrevalError` saying what shape and dtype are expected."""
    if not isinstance(pixels, np.ndarray):
        raise SrevalError(f"{context}: expected a numpy array, got {type(pixels).__name__}")
    if pixels.dtype != np.uint8:
        raise SrevalError(
            f"{context}: pixels have dtype {pixels.dtype}, expected uint8 (0..255); round and clip explicitly "
            "so the stored values are the ones you mean"
        )
    hwc = pixels[..., np.newaxis] if allow_2d and pixels.ndim == 2 else pixels
    if hwc.ndim != 3 or hwc.shape[2] not in (1, 3) or 0 in hwc.shape:
        expected = "(H, W), (H, W, 1) or (H, W, 3)" if allow_2d else "(H, W, 1) or (H, W, 3)"
        raise SrevalError(f"{context}: pixels have shape {pixels.shape}, expected {expected} with H, W > 0")
    return hwc

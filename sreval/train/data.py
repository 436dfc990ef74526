"""Training data: folders of HR images, found by path or name and indexed by which images can give a crop. The
crops themselves, drawn as one seeded stream, and the LR made from them are in `sreval.train.batches`.

A training set is any folder of HR images (T91, DIV2K's `DIV2K_train_HR/`, Flickr2K, ImageNet-style class
subfolders), given by path or by its name under the training root (`SREVAL_TRAINING_ROOT`). Nothing is
precomputed: no LR files, no patch files.

Images smaller than the crop cannot give a crop and are skipped, as are files that cannot be opened as
images, with one warning that counts them and names the first few; only a folder with nothing usable is an
error. Only image headers are read when indexing (a folder of a million JPEGs is indexed in minutes, not
hours), so a file whose pixels are damaged behind a readable header still fails when it is first drawn, with
`load_image`'s `SrevalError` naming it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sreval.datasets.registry import parse_datasets, require_files
from sreval.errors import ParameterError, SrevalError
from sreval.imageio import DEFAULT_MAX_PIXELS
from sreval.settings import how_to_set, training_root

log = logging.getLogger(__name__)

#: File endings taken as images when searching a training folder (compared in lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Crop sizes of the published recipes, in HR pixels.
CROP_SRRESNET = 96  # SRResNet, SRGAN, EnhanceNet
CROP_ESRGAN = 128

# The colour modes and formats `load_image` decodes. Files outside them are skipped when indexing rather than
# failing hours into a run (ImageNet holds a few CMYK JPEGs, for instance).
_DECODABLE_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})
_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
_HEADER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_HELD_OUT = re.compile(r"(?:^|[^a-z0-9])(?:lr|val|valid|validation|test)(?:[^a-z0-9]|$)", re.IGNORECASE)
_NAMED = 5  # skipped files named in a warning; the rest are counted
_HEADER_CHUNK = 4096  # header reads in flight at once, so a huge folder does not hold a million futures


# --- Finding the training folder --------------------------------------------------------------------------


def resolve_train_dir(train_dir: str | os.PathLike[str] | None, *, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of a training set: `train_dir` itself if it is a folder, else `train_dir` under the training root.

    A name under the root may differ in case ("t91" finds "T91"), as dataset names are spelt both ways.
    """
    base = training_root(root)
    if train_dir is None or not str(train_dir):
        raise ParameterError(
            "train_dir",
            f"no training set given: train_dir must be a folder of HR images, or the name of a folder under the "
            f"training root {base} ({_root_contents(base)}); set the training root with {how_to_set('training-root')}",
        )
    path = Path(train_dir).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise SrevalError(f"training set '{train_dir}' is a file; expected a folder of HR images")
    if not path.is_absolute():
        if (base / path).is_dir():
            return base / path
        if len(path.parts) == 1 and base.is_dir():
            matches = [d for d in _subfolders(base) if d.name.lower() == path.name.lower()]
            if len(matches) == 1:
                return matches[0]
    raise ParameterError(
        "train_dir",
        f"training set '{train_dir}' not found: it is not a folder, nor a folder under the training root {base} "
        f"({_root_contents(base)}). Give train_dir as the path of a folder of HR images, or set the training root "
        f"to the folder that holds it ({how_to_set('training-root')})",
    )


def _subfolders(base: Path) -> list[Path]:
    return sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))


def _root_contents(base: Path) -> str:
    if not base.is_dir():
        return "which does not exist"
    names = [d.name for d in _subfolders(base)]
    return f"available there: {', '.join(names)}" if names else "which holds no folders"


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under `folder` and all its subfolders, sorted by path; hidden files and folders are left out.

    Sorted so that the same folder gives the same image order, and so the same samples, on every machine.
    Symbolic links to folders are followed (training sets are often linked in), each real folder once.

    Subfolders named like LR images or held-out splits (an `LR`, `val`, `valid`, `validation` or `test` word in
    the name, e.g. DIV2K_train_LR_bicubic, DIV2K_valid_HR, ImageNet's val/) are left out with a warning: the
    datasets ship them beside the HR training images, and training on them would be silently wrong. The folder
    given is never left out, so such a folder can still be used by naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SrevalError(f"training folder '{folder}' does not exist or is not a folder")

    def fail(error: OSError) -> None:
        raise SrevalError(f"cannot list training folder '{error.filename}': {error.strerror or error}") from error

    found: list[Path] = []
    held_out: list[str] = []
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, onerror=fail, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # a link back up the tree, or a second link to the same folder
            dirnames[:] = []
            continue
        visited.add(real)
        keep = []
        for name in sorted(dirnames):
            if _HELD_OUT.search(name):
                held_out.append(Path(dirpath, name).relative_to(folder).as_posix())
            elif not name.startswith("."):
                keep.append(name)
        dirnames[:] = keep
        found += [
            Path(dirpath, name)
            for name in filenames
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    left_out = f"; left out {len(held_out)} subfolders named like LR images or held-out splits" if held_out else ""
    if held_out:
        log.warning(
            "left out %d subfolders of '%s' named like LR images or held-out splits, not HR training images: %s "
            "(to train on one, give that folder itself)",
            len(held_out),
            folder,
            _first_few(held_out),
        )
    if not found:
        raise SrevalError(
            f"no images in training folder '{folder}' or its subfolders (looked for files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}, any case{left_out})"
        )
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


# --- Indexing: which images can give a crop ---------------------------------------------------------------


@dataclass(frozen=True)
class TrainingImages:
    """The images of a training folder that are large enough for `crop`, with their sizes read from headers."""

    folder: Path
    crop: int
    paths: tuple[Path, ...]
    sizes: tuple[tuple[int, int], ...]  # (width, height) of each of `paths`
    found: int  # image files found, usable or not
    too_small: tuple[Path, ...]  # skipped: width or height below `crop`
    unreadable: tuple[tuple[Path, str], ...]  # skipped: (file, why it cannot be opened)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def skipped(self) -> int:
        return len(self.too_small) + len(self.unreadable)


def index_images(folder: str | os.PathLike[str], crop: int, *, threads: int = 8) -> TrainingImages:
    """Find the images under `folder` and keep those of at least `crop`×`crop` pixels (see module docstring).

    Headers are read by `threads` threads: indexing waits on file opens, which a network file system makes slow.
    """
    if crop < 1:
        raise SrevalError(f"crop size must be a positive number of pixels, got {crop}")
    folder = Path(folder)
    files = find_images(folder)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        headers: list[tuple[int, int] | str] = []
        for start in range(0, len(files), _HEADER_CHUNK):
            headers += pool.map(_read_header, files[start : start + _HEADER_CHUNK])

    paths: list[Path] = []
    sizes: list[tuple[int, int]] = []
    too_small: list[tuple[Path, tuple[int, int]]] = []
    unreadable: list[tuple[Path, str]] = []
    for path, header in zip(files, headers, strict=True):
        if isinstance(header, str):
            unreadable.append((path, header))
        elif min(header) < crop:
            too_small.append((path, header))
        else:
            paths.append(path)
            sizes.append(header)

    def name(path: Path) -> str:
        return path.relative_to(folder).as_posix()

    if too_small:
        listed = [f"{name(p)} ({w}×{h})" for p, (w, h) in too_small]
        log.warning(
            "skipped %d of %d images in '%s' smaller than the %d×%d crop: %s",
            len(too_small),
            len(files),
            folder,
            crop,
            crop,
            _first_few(listed),
        )
    if unreadable:
        listed = [f"{name(p)} ({why})" for p, why in unreadable]
        log.warning(
            "skipped %d of %d files in '%s' that cannot be opened as training images: %s",
            len(unreadable),
            len(files),
            folder,
            _first_few(listed),
        )
    if not paths:
        parts = []
        if too_small:
            largest = max(min(size) for _, size in too_small)
            parts.append(
                f"{len(too_small)} are smaller than the {crop}×{crop} crop "
                f"(the largest is {largest} px on its short side)"
            )
        if unreadable:
            path, why = unreadable[0]
            parts.append(f"{len(unreadable)} cannot be opened (first: {name(path)}: {why})")
        raise SrevalError(
            f"no usable training images in '{folder}': of {len(files)} image files, {' and '.join(parts)}"
        )
    return TrainingImages(
        folder=folder,
        crop=crop,
        paths=tuple(paths),
        sizes=tuple(sizes),
        found=len(files),
        too_small=tuple(p for p, _ in too_small),
        unreadable=tuple(unreadable),
    )


def _read_header(path: Path) -> tuple[int, int] | str:
    """(width, height) from the file's header (Pillow opens lazily, no pixel is decoded), or why it is unusable."""
    try:
        with Image.open(path, formats=_FORMATS) as image:
            width, height = image.size
            mode = image.mode
    except UnidentifiedImageError:  # Pillow's message repeats the path, which the warning already names
        return f"not a {', '.join(_FORMATS)} image, or its header is damaged"
    except _HEADER_ERRORS as error:
        return str(error) or type(error).__name__
    if mode not in _DECODABLE_MODES:
        return f"colour mode {mode} is not supported"
    if width * height > DEFAULT_MAX_PIXELS:
        return f"{width}×{height} is above the {DEFAULT_MAX_PIXELS:,}-pixel limit"
    return width, height


def _first_few(items: Sequence[str]) -> str:
    more = len(items) - _NAMED
    return ", ".join(items[:_NAMED]) + (f" and {more} more" if more > 0 else "")


def training_inputs(
    train_dir: str | os.PathLike[str] | None, *, data_root: Path | None, validation_sets: Sequence[str]
) -> Path:
    """The training folder (as `resolve_train_dir`), checked together with the benchmark data that validation
    reads (`validation_sets` under `data_root`; none when validation is off), so that a first run lacking both
    settings hears of both at once instead of one per attempt. One problem is raised as it is."""
    problems: list[SrevalError] = []
    folder = None
    try:
        folder = resolve_train_dir(train_dir)
    except SrevalError as error:
        problems.append(error)
    if validation_sets and data_root is not None:
        try:
            require_files(parse_datasets(list(validation_sets)), data_root)
        except SrevalError as error:
            problems.append(error)
    if folder is not None and not problems:
        return folder
    if len(problems) == 1:
        raise problems[0]
    listed = "\n".join(f"  - {problem}" for problem in problems)
    message = f"{len(problems)} settings are missing or wrong; fix them all before the next try:\n{listed}"
    # Keeps the training folder's parameter, so that a shell names its own flag for it.
    parameter = next((p.parameter for p in problems if isinstance(p, ParameterError)), None)
    raise ParameterError(parameter, message) if parameter else SrevalError(message)

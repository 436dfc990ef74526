"""Training data: folders of HR images, random crops drawn as one seeded stream, LR made on the fly.

A training set is any folder of HR images (T91, DIV2K's `DIV2K_train_HR/`, Flickr2K, ImageNet-style class
subfolders), given by path or by its name under the training root (`SREVAL_TRAINING_ROOT`). Nothing is
precomputed: no LR files, no patch files. LR inputs are made from the HR crops with sreval's MATLAB-exact
bicubic (`make_lr`, on whatever device the batch is on, so on the GPU in training), which is the degradation
the benchmarks use; an LR made by another resizer would train the model for a degradation it is never tested on.

Sampling is a pure function of (seed, global sample index g), with g = step × global batch + position in the
batch. Image order is a fresh permutation of the images each epoch (epoch = g // number of images), so every
image is seen once per epoch; the crop position and one of the 8 flips/90° rotations come from a generator
seeded with (seed, g). Hence:

- workers, their number and their scheduling cannot change what is drawn;
- resuming at step k gives exactly the batches an uninterrupted run would have given from step k;
- under DDP, rank r of W takes positions [r·B/W, (r+1)·B/W) of each global batch B, so W ranks together see
  exactly the samples one process with batch B sees (the same loss, up to float summation order).

The stream depends on the global batch only through g, so resuming with another batch size shifts which
samples fall in which step; a run's recipe fixes the batch size.

Images smaller than the crop cannot give a crop and are skipped, as are files that cannot be opened as
images, with one warning that counts them and names the first few; only a folder with nothing usable is an
error. Only image headers are read when indexing (a folder of a million JPEGs is indexed in minutes, not
hours), so a file whose pixels are damaged behind a readable header still fails when it is first drawn, with
`load_image`'s `SrevalError` naming it.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, Sampler

from sreval.errors import SrevalError
from sreval.imageio import DEFAULT_MAX_PIXELS, load_image
from sreval.matlab.imresize import Variant, imresize

log = logging.getLogger(__name__)

#: File endings taken as images when searching a training folder (compared in lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Crop sizes of the published recipes, in HR pixels.
CROP_SRRESNET = 96  # SRResNet, SRGAN, EnhanceNet
CROP_ESRGAN = 128

#: Number of distinct flips and 90° rotations of a square (the dihedral group of order 8).
TRANSFORMS = 8

#: Per-worker memory for decoded images. T91 (about 11 MB decoded) then stays decoded after its first epoch;
#: DIV2K (about 7 GB) is mostly decoded per access, as it must be without an LMDB-like store.
DEFAULT_CACHE_BYTES = 256 << 20

# The colour modes and formats `load_image` decodes. Files outside them are skipped when indexing rather than
# failing hours into a run (ImageNet holds a few CMYK JPEGs, for instance).
_DECODABLE_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})
_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")
_HEADER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_HELD_OUT = re.compile(r"(?:^|[^a-z0-9])(?:lr|val|valid|validation|test)(?:[^a-z0-9]|$)", re.IGNORECASE)
_NAMED = 5  # skipped files named in a warning; the rest are counted
_HEADER_CHUNK = 4096  # header reads in flight at once, so a huge folder does not hold a million futures

# Separate seed streams, so an epoch's permutation and a sample's crop never share random numbers.
_EPOCH_STREAM = 0
_SAMPLE_STREAM = 1


# --- Finding the training folder --------------------------------------------------------------------------


def training_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding training sets by name, e.g. T91/, DIV2K/ (explicit, then SREVAL_TRAINING_ROOT, then XDG)."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("SREVAL_TRAINING_ROOT"):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "sreval" / "training"


def resolve_train_dir(spec: str | os.PathLike[str] | None, *, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of a training set: `spec` itself if it is a folder, else `spec` under the training root.

    A name under the root may differ in case ("t91" finds "T91"), as dataset names are spelt both ways.
    """
    base = training_root(root)
    if spec is None or not str(spec):
        raise SrevalError(
            f"no training set given: pass --train-dir with a folder of HR images, or the name of a folder under "
            f"the training root {base} ({_root_contents(base)})"
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise SrevalError(f"training set '{spec}' is a file; expected a folder of HR images")
    if not path.is_absolute():
        if (base / path).is_dir():
            return base / path
        if len(path.parts) == 1 and base.is_dir():
            matches = [d for d in _subfolders(base) if d.name.lower() == path.name.lower()]
            if len(matches) == 1:
                return matches[0]
    raise SrevalError(
        f"training set '{spec}' not found: it is not a folder, nor a folder under the training root {base} "
        f"({_root_contents(base)}). Pass --train-dir with the path of a folder of HR images, or set "
        "SREVAL_TRAINING_ROOT to the folder that holds it"
    )


def _subfolders(base: Path) -> list[Path]:
    return sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))


def _root_contents(base: Path) -> str:
    if not base.is_dir():
        return "which does not exist; set SREVAL_TRAINING_ROOT to change it"
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


# --- Sampling ---------------------------------------------------------------------------------------------


class CropSpec(NamedTuple):
    """Where sample g comes from: image index, crop corner in the image, and which of the 8 transforms."""

    image: int
    top: int
    left: int
    transform: int


def dihedral(x: torch.Tensor, transform: int) -> torch.Tensor:
    """One of the 8 flips/rotations of the last two (square) dims: `transform % 4` quarter turns, then a
    left-right flip if `transform >= 4`. Exact pixel permutations, so they never change a pixel value."""
    if not 0 <= transform < TRANSFORMS:
        raise SrevalError(f"transform must be in 0..{TRANSFORMS - 1}, got {transform}")
    x = torch.rot90(x, transform % 4, dims=(-2, -1))
    return x.flip(-1) if transform >= 4 else x


class RandomCrops(Dataset[torch.Tensor]):
    """Sample g of the stream: a uint8 (3, crop, crop) HR crop, a function of (seed, g) only (module docstring).

    Grayscale images are repeated to 3 channels. The index space is unbounded; use a batch sampler that
    yields global sample indices (`make_loader` does).
    """

    def __init__(self, images: TrainingImages, seed: int, *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if seed < 0:
            raise SrevalError(f"seed must be a non-negative integer, got {seed}")
        self.images = images
        self.crop = images.crop
        self.seed = seed
        self.cache_bytes = cache_bytes
        self._decoded: dict[int, np.ndarray] = {}
        self._decoded_bytes = 0
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of image indices that epoch `epoch` visits."""
        order = self._orders.get(epoch)
        if order is None:
            if len(self._orders) >= 4:  # a batch spans two epochs at most, unless it holds more samples than images
                del self._orders[next(iter(self._orders))]
            rng = np.random.default_rng([self.seed, _EPOCH_STREAM, epoch])
            order = self._orders[epoch] = rng.permutation(len(self.images))
        return order

    def sample(self, g: int) -> CropSpec:
        """What sample `g` is, without decoding anything."""
        if g < 0:
            raise SrevalError(f"sample index must be non-negative, got {g}")
        epoch, position = divmod(g, len(self.images))
        image = int(self.order(epoch)[position])
        width, height = self.images.sizes[image]
        rng = np.random.default_rng([self.seed, _SAMPLE_STREAM, g])
        top = int(rng.integers(0, height - self.crop + 1))
        left = int(rng.integers(0, width - self.crop + 1))
        return CropSpec(image, top, left, int(rng.integers(0, TRANSFORMS)))

    def __getitem__(self, g: int) -> torch.Tensor:
        spec = self.sample(g)
        pixels = self._pixels(spec.image)
        patch = pixels[spec.top : spec.top + self.crop, spec.left : spec.left + self.crop]
        chw = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)
        if chw.shape[0] == 1:
            chw = chw.expand(3, -1, -1)
        return dihedral(chw, spec.transform).contiguous()

    def _pixels(self, index: int) -> np.ndarray:
        pixels = self._decoded.get(index)
        if pixels is not None:
            return pixels
        path = self.images.paths[index]
        pixels = load_image(path).pixels
        width, height = self.images.sizes[index]
        if pixels.shape[:2] != (height, width):
            raise SrevalError(
                f"training image '{path}' is {pixels.shape[1]}×{pixels.shape[0]} but was {width}×{height} when the "
                "folder was indexed; it changed during training"
            )
        # Kept until the budget is full, then nothing more: images are drawn in a random order, so which
        # image was used last predicts nothing, and evicting (LRU) would only churn at the same hit rate.
        if self._decoded_bytes + pixels.nbytes <= self.cache_bytes:
            self._decoded[index] = pixels
            self._decoded_bytes += pixels.nbytes
        return pixels


class StepBatches(Sampler[list[int]]):
    """Global sample indices of this rank's share of each step's batch, for steps `start`, `start`+1, ...

    Rank r of `world_size` gets positions [r·b, (r+1)·b) of each global batch, b = batch / world_size.
    """

    def __init__(
        self, batch: int, *, start: int = 0, stop: int | None = None, rank: int = 0, world_size: int = 1
    ) -> None:
        if batch < 1:
            raise SrevalError(f"batch size must be positive, got {batch}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise SrevalError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size})")
        if batch % world_size:
            raise SrevalError(
                f"global batch size {batch} is not divisible by the {world_size} processes; choose a batch size "
                f"that is a multiple of {world_size} (each process takes an equal share of every batch)"
            )
        if start < 0 or (stop is not None and stop < start):
            raise SrevalError(f"invalid step range {start}..{stop}")
        self.batch = batch
        self.share = batch // world_size
        self.start = start
        self.stop = stop
        self.rank = rank

    def __iter__(self) -> Iterator[list[int]]:
        steps = itertools.count(self.start) if self.stop is None else range(self.start, self.stop)
        for step in steps:
            first = step * self.batch + self.rank * self.share
            yield list(range(first, first + self.share))

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("an unbounded step range has no length")
        return self.stop - self.start


def make_loader(
    images: TrainingImages,
    *,
    batch: int,
    seed: int,
    start_step: int = 0,
    stop_step: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 2,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    pin_memory: bool | None = None,
) -> DataLoader[torch.Tensor]:
    """HR batches, uint8 (batch / world_size, 3, crop, crop), for steps start_step, ... (forever without stop_step).

    `batch` is the global batch over all ranks. `workers` processes decode and crop (0: in this process); they
    do not change the batches. Memory is pinned by default when CUDA is available, for fast host-to-GPU copies.
    """
    if workers < 0:
        raise SrevalError(f"workers must be 0 or more, got {workers}")
    sampler = StepBatches(batch, start=start_step, stop=stop_step, rank=rank, world_size=world_size)
    return DataLoader(
        RandomCrops(images, seed, cache_bytes=cache_bytes),
        batch_sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
    )


# --- LR inputs --------------------------------------------------------------------------------------------


def make_lr(hr: torch.Tensor, scale: int = 4, *, variant: Variant = "uint8") -> torch.Tensor:
    """LR batch from a uint8 HR batch (N, C, H, W) with MATLAB's bicubic `imresize(hr, 1/scale)`, on hr's device.

    H and W must be multiples of `scale`, so LR and HR pixels line up exactly.
    """
    if hr.dtype != torch.uint8 or hr.ndim != 4:
        raise SrevalError(f"make_lr expects a uint8 (N, C, H, W) batch, got {hr.dtype} {tuple(hr.shape)}")
    height, width = hr.shape[-2:]
    if scale < 1 or height % scale or width % scale:
        raise SrevalError(f"HR size {height}×{width} is not a multiple of the scale {scale}")
    # size= rather than scale=1/scale: the same weights (out/in is the same double as 1/scale), and no
    # ceil(H × (1/3)) landing one pixel high for scales whose reciprocal is inexact.
    return imresize(hr, size=(height // scale, width // scale), variant=variant)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] (the scale the models train at)."""
    if x.dtype != torch.uint8:
        raise SrevalError(f"to_unit expects uint8 pixels, got {x.dtype}")
    return x.to(torch.float32).div_(255)

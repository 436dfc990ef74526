"""The four ×4 benchmark sets: a registry read from the shipped checksum manifest, verification and loading.

The manifest (`manifest.csv` beside this file) is a fact file: one row per HR image with its path under the
data root, SHA-256, byte size, size and channel count. Nothing is scanned from disk to decide what a dataset
is; the data root only has to hold the files the manifest names.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np

from sreval.errors import ParameterError, SrevalError
from sreval.imageio import LoadedImage, load_image

SCALE = 4
_FOLDERS = {"set5": "Set5", "set14": "Set14", "bsd100": "BSD100", "urban100": "Urban100"}


@dataclass(frozen=True)
class ImageEntry:
    dataset: str
    name: str
    path: str  # relative to the data root, POSIX separators
    sha256: str
    bytes: int
    width: int
    height: int
    channels: int

    @property
    def stem(self) -> str:
        """File stem without the `_HR` suffix, e.g. `img_001_SRF_4`; another name outputs are often saved under."""
        return Path(self.path).stem.removesuffix("_HR")


@dataclass(frozen=True)
class Dataset:
    key: str
    folder: str
    scale: int
    images: tuple[ImageEntry, ...]

    @property
    def checksum(self) -> str:
        """SHA-256 over the image names and file hashes: identifies the exact ground truth of a run."""
        digest = hashlib.sha256()
        for entry in self.images:
            digest.update(f"{entry.name}:{entry.sha256}\n".encode())
        return digest.hexdigest()

    def image(self, name: str) -> ImageEntry:
        for entry in self.images:
            if entry.name == name:
                return entry
        raise SrevalError(f"{self.key} has no image {name!r}")


@cache
def registry() -> dict[str, Dataset]:
    """All known datasets, keyed by their lower-case name."""
    grouped: dict[str, list[ImageEntry]] = {key: [] for key in _FOLDERS}
    text = files("sreval.datasets").joinpath("manifest.csv").read_text()
    for row in csv.DictReader(text.splitlines()):
        entry = ImageEntry(
            dataset=row["dataset"], name=row["image"], path=row["path"], sha256=row["sha256"],
            bytes=int(row["bytes"]), width=int(row["width"]), height=int(row["height"]),
            channels=int(row["channels"]),
        )
        grouped[entry.dataset].append(entry)
    return {key: Dataset(key, _FOLDERS[key], SCALE, tuple(images)) for key, images in grouped.items()}


def get_dataset(key: str) -> Dataset:
    datasets = registry()
    try:
        return datasets[key.strip().lower()]
    except KeyError:
        raise ParameterError("key", f"unknown dataset {key!r}; known: {', '.join(datasets)}") from None


def parse_datasets(datasets: Sequence[str]) -> list[Dataset]:
    """Datasets by name (any case, blanks skipped), in the order given, without duplicates."""
    if isinstance(datasets, str):  # a string is a sequence of letters: never what is meant
        raise ParameterError("datasets", f"datasets must be a sequence of dataset names, got the string {datasets!r}")
    keys = [k.strip().lower() for k in datasets if k.strip()]
    if not keys:
        raise ParameterError("datasets", f"no dataset named in {list(datasets)!r}; known: {', '.join(registry())}")
    try:
        return [get_dataset(k) for k in dict.fromkeys(keys)]
    except ParameterError as error:
        raise ParameterError("datasets", str(error)) from error


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def check_file(entry: ImageEntry, root: Path) -> Problem | None:
    """None if the file under `root` is exactly the one in the manifest, else what is wrong with it."""
    path = root / entry.path
    if not path.is_file():
        return Problem(path, f"missing (expected {entry.bytes} bytes, sha256 {entry.sha256})")
    data = path.read_bytes()
    if len(data) != entry.bytes:
        return Problem(path, f"has {len(data)} bytes, expected {entry.bytes}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        return Problem(path, f"sha256 {digest} does not match the expected {entry.sha256}")
    return None


def verify(dataset: Dataset, root: Path) -> list[Problem]:
    """Check every file of a dataset against the manifest; an empty list means all is well."""
    return [p for entry in dataset.images if (p := check_file(entry, root)) is not None]


def require_files(datasets: list[Dataset], root: Path) -> None:
    """Fail before any work starts when files are missing (checksums are checked when each file is read)."""
    missing = [root / e.path for d in datasets for e in d.images if not (root / e.path).is_file()]
    if missing:
        raise SrevalError(
            f"{len(missing)} benchmark file(s) missing under {root} (first: {missing[0]}); set --data-root or "
            "SREVAL_DATA_ROOT to the folder holding Set5/, Set14/, BSD100/, Urban100/, or run `sreval data download`"
        )


def mod_crop(pixels: np.ndarray, scale: int) -> np.ndarray:
    """Crop (H, W, C) to the largest multiple of `scale` from the top-left, as the published test sets do."""
    h, w = pixels.shape[:2]
    return pixels[: h - h % scale, : w - w % scale]


def load_hr(entry: ImageEntry, root: Path) -> LoadedImage:
    """Load one ground-truth image, verified against the manifest and mod-cropped to the scale."""
    path = root / entry.path
    if not path.is_file():
        raise SrevalError(
            f"{path} is missing (dataset {entry.dataset}, image {entry.name}); set --data-root or "
            f"SREVAL_DATA_ROOT to the folder holding {Path(entry.path).parts[0]}/, or run `sreval data download`"
        )
    try:
        image = load_image(path)
    except SrevalError:
        # A damaged copy usually fails to decode: say that it differs from the manifest, not only that it is corrupt.
        digest = _file_sha256(path)
        if digest is None or digest == entry.sha256:
            raise
        raise _differs(path, digest, entry) from None
    if image.sha256 != entry.sha256:
        raise _differs(path, image.sha256, entry)
    cropped = mod_crop(image.pixels, SCALE)
    return LoadedImage(path=image.path, pixels=np.ascontiguousarray(cropped), sha256=image.sha256)


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _differs(path: Path, digest: str, entry: ImageEntry) -> SrevalError:
    return SrevalError(
        f"{path} has sha256 {digest}, expected {entry.sha256}: the file differs from the published "
        f"{entry.dataset} image {entry.name}; replace it (`sreval data verify` checks all files)"
    )

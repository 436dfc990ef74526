"""Folder methods: existing SR outputs in a folder (`folder:PATH`), matched to a dataset's images by file name.

People save outputs as `baby.png`, `babyx4.png`, `baby_x4_SR.png`, `baby_SRGAN-VGG54.png` or under the set's
file stems (`img_001_SRF_4_SR.png`). A file matches an image when its stem, after dropping a scale suffix like
`x4`, equals one of the image's names or starts with one followed by `_` or `-`; the longest name wins.

Only names with an image suffix are considered; other files (notes, logs) are left alone. An entry with an image
suffix that is not a readable file (a directory, a symlink loop, a symlink to nothing) is listed in
`Match.unreadable` with the reason, so the caller can name it instead of skipping it without a word.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sreval.datasets.registry import Dataset, ImageEntry
from sreval.errors import ParameterError, SrevalError
from sreval.imageio import LoadedImage, load_image
from sreval.methods.base import Method, MethodInput

log = logging.getLogger(__name__)

#: Suffixes of the formats `sreval.imageio.load_image` reads (GIF included: a single 8-bit frame is read exactly).
IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
_SCALE_SUFFIX = re.compile(r"[_-]?x\d$", re.IGNORECASE)
_SRF_SUFFIX = re.compile(r"_SRF_\d+$")


@dataclass
class Match:
    files: dict[str, Path] = field(default_factory=dict)  # image name → file
    missing: list[str] = field(default_factory=list)  # image names without a file
    extra: list[Path] = field(default_factory=list)  # image files that match no image
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # image-like entries that are no file, why


def aliases(entry: ImageEntry) -> list[str]:
    """Lower-case names a file for this image may start with."""
    names = {entry.name, entry.stem, _SRF_SUFFIX.sub("", entry.stem)}
    return sorted({n.lower() for n in names}, key=len, reverse=True)


def _image_for(stem: str, table: list[tuple[str, str]]) -> str | None:
    stem = stem.lower()
    candidates = {stem, _SCALE_SUFFIX.sub("", stem)}
    for alias, name in table:  # longest alias first
        for c in candidates:
            if c == alias or (c.startswith(alias) and c[len(alias)] in "_-"):
                return name
    return None


def match_folder(folder: Path, dataset: Dataset) -> Match:
    if not folder.is_dir():
        raise SrevalError(f"{folder} is not a folder of SR images")
    table = sorted(((a, e.name) for e in dataset.images for a in aliases(e)), key=lambda t: len(t[0]), reverse=True)
    result = Match()
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        problem = _not_a_file(path)
        if problem is not None:
            result.unreadable.append((path, problem))
            continue
        name = _image_for(path.stem, table)
        if name is None:
            result.extra.append(path)
        elif name in result.files:
            raise SrevalError(
                f"two files in {folder} match {dataset.key} image {name!r}: {result.files[name].name} and "
                f"{path.name}; keep one"
            )
        else:
            result.files[name] = path
    result.missing = [e.name for e in dataset.images if e.name not in result.files]
    return result


def _not_a_file(path: Path) -> str | None:
    """Why `path` (following symlinks) is not a regular file that can be opened, or None when it is one."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if path.is_symlink():
            if error.errno == errno.ELOOP:
                return "a symlink loop"
            if error.errno == errno.ENOENT:
                return f"a dangling symlink to {os.readlink(path)}, which does not exist"
        return f"cannot be inspected: {error.strerror or error}"
    if stat.S_ISDIR(mode):
        return "a directory"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


class Folder(Method):
    """Existing SR outputs in a folder. The path may contain `{dataset}` (replaced by Set5, Set14, ...);
    otherwise a subfolder named like the dataset is used when present, else the folder itself."""

    computes_output = False

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = str(path)
        if name and not _is_text(name):
            raise ParameterError(
                "name",
                f"method name '{as_text(name)}' is not valid UTF-8 text; method names go into the results store "
                "and the CSV files, so choose one that is (the folder's own name may still be anything)"
            )
        # A folder name need not be UTF-8 (Linux names are bytes) and is read as it is; the name derived from it
        # shows such bytes as \xNN escapes, because the results store and the CSV files hold text.
        self.name = name or as_text(Path(self.path.replace("{dataset}", "")).name or self.path)
        self._matches: dict[str, dict[str, Path]] = {}
        self._warned: set[tuple[Path, str]] = set()  # (file, what): each file's warning is given once

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "path": as_text(str(Path(self.path).expanduser().resolve()))}

    def folder_for(self, dataset: Dataset) -> Path:
        if "{dataset}" in self.path:
            return Path(self.path.replace("{dataset}", dataset.folder)).expanduser()
        base = Path(self.path).expanduser()
        for candidate in (dataset.folder, dataset.key):
            if (base / candidate).is_dir():
                return base / candidate
        return base

    def images(self, dataset: Dataset) -> list[ImageEntry]:
        """The dataset's images that have an output file. The folder is matched, and what is wrong with it
        reported, once per dataset: later calls (the CLI asks before the run, the runner again) reuse that match,
        so each warning is printed once and the files scored are the files that were reported."""
        if dataset.key not in self._matches:
            self._matches[dataset.key] = self._match(dataset)
        files = self._matches[dataset.key]
        return [e for e in dataset.images if e.name in files]

    def _match(self, dataset: Dataset) -> dict[str, Path]:
        folder = self.folder_for(dataset)
        match = match_folder(folder, dataset)
        shown = as_text(str(folder))
        if match.unreadable:
            log.warning(
                "%s: %d entries in %s have an image suffix but cannot be read, so they match no %s image: %s",
                self.name, len(match.unreadable), shown, dataset.key,
                ", ".join(f"{as_text(p.name)} ({why})" for p, why in match.unreadable),
            )
        if match.missing:
            log.warning(
                "%s: %d of %d %s images have no output in %s: %s — the set mean is then not comparable to "
                "published means", self.name, len(match.missing), len(dataset.images), dataset.key, shown,
                ", ".join(match.missing),
            )
        if match.extra:
            log.warning("%s: %d files in %s match no %s image: %s", self.name, len(match.extra), shown,
                        dataset.key, ", ".join(as_text(p.name) for p in match.extra))
        return match.files

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        files = self._matches.get(item.dataset.key)
        if files is None:
            self.images(item.dataset)
            files = self._matches[item.dataset.key]
        if item.entry.name not in files:
            raise SrevalError(f"{self.name} has no output for {item.dataset.key} image {item.entry.name}")
        path = files[item.entry.name]
        image = load_image(path)
        hr_h, hr_w = item.hr.pixels.shape[:2]
        h, w = image.pixels.shape[:2]
        if (h, w) != (hr_h, hr_w):
            raise SrevalError(
                f"{path} is {w}x{h} but the reference {item.dataset.key}/{item.entry.name} is {hr_w}x{hr_h} "
                f"(HR mod-cropped to a multiple of {item.protocol.scale}); crop outputs made from the uncropped "
                "original to the mod-cropped size"
            )
        self._warn_about(image, item)
        return image.pixels

    def _warn_about(self, image: LoadedImage, item: MethodInput) -> None:
        """Outputs that are scored but not like the published ones: a lossy file, or grey against a colour image."""
        shown = as_text(str(image.path))
        if image.lossy and (image.path, "lossy") not in self._warned:
            self._warned.add((image.path, "lossy"))
            log.warning(
                "%s: %s is a %s file: lossy compression changed its pixels, so its scores are not comparable to "
                "published tables (made from lossless PNG outputs); save the outputs as PNG",
                self.name, shown, image.format,
            )  # fmt: skip
        if image.channels == 1 and item.hr.pixels.shape[2] == 3 and (image.path, "gray") not in self._warned:
            self._warned.add((image.path, "gray"))
            log.warning(
                "%s: %s is grayscale but the reference %s/%s is RGB: it is scored as it is, against the reference's "
                "Y; an output that lost its colours when saved scores unlike the method's real output",
                self.name, shown, item.dataset.key, item.entry.name,
            )  # fmt: skip


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of a file name or argument that are not UTF-8
        return False
    return True


def as_text(value: str) -> str:
    """`value` as valid text: bytes that were not UTF-8 (Python keeps them as surrogate escapes in file names and
    arguments) become `\\xNN`, other unencodable characters `\\uNNNN`; valid text is returned unchanged."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")

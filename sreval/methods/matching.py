"""Match a folder of SR outputs to a dataset's images by file name.

People save outputs as `baby.png`, `babyx4.png`, `baby_x4_SR.png`, `baby_SRGAN-VGG54.png` or under the set's
file stems (`img_001_SRF_4_SR.png`). A file matches an image when its stem, after dropping a scale suffix like
`x4`, equals one of the image's names or starts with one followed by `_` or `-`; the longest name wins.

Only names with an image suffix are considered; other files (notes, logs) are left alone. An entry with an image
suffix that is not a readable file (a directory, a symlink loop, a symlink to nothing) is listed in
`Match.unreadable` with the reason, so the caller can name it instead of skipping it without a word.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sreval.datasets.registry import Dataset, ImageEntry
from sreval.errors import SrevalError

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

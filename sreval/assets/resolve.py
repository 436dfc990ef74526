"""Model parameter files that metrics (and later losses) need: where they are looked for, and their checksums.

Nothing is ever downloaded at run time. A file is resolved in this order:

1. an explicit path (a CLI option or function argument);
2. every folder in `SREVAL_ASSETS` (separated by the OS path separator), as `DIR/FILE` or `DIR/SUBDIR/FILE`;
3. sreval's asset cache, `<cache dir>/assets/FILE` (where `sreval assets add NAME PATH` installs files);
4. the asset's own standard locations (e.g. torchvision's checkpoint cache for VGG19).

A file whose checksum is known is verified; a mismatch is an error, not a fallback to the next location.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from sreval import settings
from sreval.assets.catalogue import ASSETS, Asset
from sreval.errors import ParameterError, SrevalError
from sreval.fileutil import atomic_open


def get_asset(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise ParameterError("name", f"unknown asset {name!r}; known: {', '.join(ASSETS)}") from None


def assets_cache() -> Path:
    return settings.assets_dir()


def search_paths(asset: Asset, explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """Every place `resolve` looks, in order."""
    places: list[Path] = []
    if explicit:
        places.append(Path(explicit).expanduser())
    for folder in filter(None, os.environ.get("SREVAL_ASSETS", "").split(os.pathsep)):
        root = Path(folder).expanduser()
        places += [root / asset.filename, root / asset.subdir / asset.filename]
    places.append(assets_cache() / asset.filename)
    places += asset.standard_locations()
    return places


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_status(asset: Asset, path: Path) -> str:
    """'ok', 'unverified' (no known checksum) or 'mismatch'."""
    if asset.sha256 is None:
        return "unverified"
    return "ok" if sha256_of(path).startswith(asset.sha256) else "mismatch"


class AssetMissing(SrevalError):
    """A required parameter file is not installed; the message says which file and where to put it."""


def missing_message(asset: Asset, places: list[Path]) -> str:
    return (
        f"{asset.filename} ({asset.description}) not found; looked in: {', '.join(map(str, places))}. "
        f"Get it from {asset.source} and run `sreval assets add {asset.name} PATH` (installs it to "
        f"{assets_cache()}), or put its folder in SREVAL_ASSETS"
    )


def resolve(name: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """Path of a verified asset file, or `AssetMissing` / `SrevalError` saying what is wrong."""
    asset = get_asset(name)
    places = search_paths(asset, explicit)
    for place in places:
        if place.is_file():
            if checksum_status(asset, place) == "mismatch":
                raise SrevalError(
                    f"{place} has sha256 {sha256_of(place)}, expected {asset.sha256}: it is not the {asset.name} "
                    f"asset ({asset.description}); replace it"
                )
            return place
        if explicit and place == places[0]:
            raise AssetMissing(f"{place} (given for asset {asset.name}) does not exist")
    raise AssetMissing(missing_message(asset, places))


def add(name: str, source: str | os.PathLike[str]) -> Path:
    """Install a local file as an asset (checksum verified when known); returns where it now lives."""
    asset = get_asset(name)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ParameterError("source", f"source {path} is not a file")
    if checksum_status(asset, path) == "mismatch":
        raise SrevalError(f"{path} has sha256 {sha256_of(path)}, expected {asset.sha256}; not installed")
    target = assets_cache() / asset.filename
    with atomic_open(target, "wb") as f, path.open("rb") as original:
        shutil.copyfileobj(original, f)
    return target

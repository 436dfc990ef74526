"""Model parameter files that metrics, losses and zoo models need: where they are looked for, their checksums,
and their download. A file is resolved in this order:

1. an explicit path (a CLI option or function argument);
2. every folder in `SREVAL_ASSETS` (separated by the OS path separator), as `DIR/FILE` or `DIR/SUBDIR/FILE`;
3. sreval's asset cache, `settings.assets_dir()/FILE` (where `sreval assets add|download` install files);
4. the asset's own standard locations (e.g. torchvision's checkpoint cache for VGG19).

A file whose size or hashes are pinned is verified; a mismatch is an error, not a fallback to the next location.
When none is found, `resolve` downloads the file into the asset cache on first use, if the catalogue gives URLs
and a hash to check it by and SREVAL_OFFLINE is not 1. `locate` is `resolve` without that download: what a
listing or an availability check calls, since only actual use may fetch a file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

from sreval import settings
from sreval.assets.catalogue import ASSETS, Asset
from sreval.download import TIMEOUT_S, DownloadError, Pins, fetch, hashes_of, human_size, mismatch, offline
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


def pins_of(asset: Asset) -> Pins:
    return Pins(size=asset.size, sha256=asset.sha256, git_blob=asset.git_blob)


def mismatch_of(asset: Asset, path: Path) -> str | None:
    """None when `path` has the asset's pinned size and hashes, else what differs (`sha256 X, expected Y`)."""
    return mismatch(hashes_of(path), pins_of(asset))


def checksum_status(asset: Asset, path: Path) -> str:
    """'ok' (every pin matches, and SHA-256 or git blob is pinned), 'unverified' (no hash is known, so the file
    is used as it is) or 'mismatch' (a pinned size or hash differs)."""
    if mismatch_of(asset, path) is not None:
        return "mismatch"
    return "ok" if pins_of(asset).hashed else "unverified"


class AssetMissing(SrevalError):
    """A required parameter file is not installed; the message says which file and where to put it."""


def missing_message(asset: Asset, places: list[Path]) -> str:
    by_hand = (
        f"from {asset.source} and run `sreval assets add {asset.name} PATH` (installs it to {assets_cache()}), "
        "or put its folder in SREVAL_ASSETS"
    )
    how = f"Get it {by_hand}"
    if downloadable(asset):
        unset = ", with SREVAL_OFFLINE unset" if offline() else ""
        how = (
            f"Download it with `sreval assets download {asset.name}` ({human_size(asset.size)}, from "
            f"{asset.urls[0]}; needs network{unset}), or get it {by_hand}"
        )
    return f"{asset.filename} ({asset.description}) not found; looked in: {', '.join(map(str, places))}. {how}"


def downloadable(asset: Asset) -> bool:
    """Whether sreval can fetch the asset: it has URLs and a hash to verify the download by."""
    return bool(asset.urls) and pins_of(asset).hashed


def resolve(name: str, explicit: str | os.PathLike[str] | None = None, *, download_missing: bool = True) -> Path:
    """Path of a verified asset file, or `AssetMissing` / `SrevalError` saying what is wrong. A missing file is
    downloaded first when `download_missing` and the asset is downloadable and SREVAL_OFFLINE is not 1; one line
    on stderr says what, from where and how big."""
    asset = get_asset(name)
    places = search_paths(asset, explicit)
    for place in places:
        if place.is_file():
            wrong = mismatch_of(asset, place)
            if wrong is not None:
                raise SrevalError(
                    f"{place} has {wrong}: it is not the {asset.name} asset ({asset.description}); replace it"
                )
            return place
        if explicit and place == places[0]:
            raise AssetMissing(f"{place} (given for asset {asset.name}) does not exist")
    if download_missing and downloadable(asset) and not offline():
        target = assets_cache() / asset.filename
        print(
            f"sreval: asset {asset.name} ({asset.description}) is not installed; downloading {asset.filename} "
            f"({human_size(asset.size)}) from {asset.urls[0]} to {target}",
            file=sys.stderr,
            flush=True,
        )
        try:
            return download(name)
        except DownloadError as e:
            raise AssetMissing(f"{missing_message(asset, places)}. Downloading it failed: {e}") from None
    raise AssetMissing(missing_message(asset, places))


def locate(name: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """`resolve` that never downloads: for listings and availability checks."""
    return resolve(name, explicit, download_missing=False)


def download(name: str, *, timeout: float = TIMEOUT_S, show_progress: bool = True) -> Path:
    """Download an asset into the asset cache (verified before it gets its name); returns its path. A verified
    copy already there is kept without a request."""
    asset = get_asset(name)
    if not asset.urls:
        raise SrevalError(
            f"asset {name} has no download URL: get it from {asset.source}; then run `sreval assets add {name} PATH`"
        )
    if not pins_of(asset).hashed:
        raise SrevalError(
            f"asset {name} has no pinned SHA-256 or git blob, and sreval downloads only files it can verify: get it "
            f"from {asset.source}; then run `sreval assets add {name} PATH`"
        )
    target = assets_cache() / asset.filename
    if target.is_file() and checksum_status(asset, target) == "ok":
        return target
    return fetch(asset.urls, target, pins_of(asset), timeout=timeout, desc=name, show_progress=show_progress)


def add(name: str, source: str | os.PathLike[str]) -> Path:
    """Install a local file as an asset (checksum verified when known); returns where it now lives."""
    asset = get_asset(name)
    path = Path(source).expanduser()
    if not path.is_file():
        raise ParameterError("source", f"source {path} is not a file")
    wrong = mismatch_of(asset, path)
    if wrong is not None:
        raise SrevalError(f"{path} has {wrong}; not installed")
    target = assets_cache() / asset.filename
    with atomic_open(target, "wb") as f, path.open("rb") as original:
        shutil.copyfileobj(original, f)
    return target

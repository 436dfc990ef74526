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
from dataclasses import dataclass
from pathlib import Path

from sreval import settings
from sreval.errors import ParameterError, SrevalError
from sreval.fileutil import atomic_open


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    subdir: str  # conventional folder name under an assets root (e.g. `niqe/modelparameters.mat`)
    #: Full SHA-256, or a hex prefix (torchvision names checkpoints by the first 8 digits), or None when no
    #: trusted checksum is known to sreval (the file is then used as it is and reported as unverified).
    sha256: str | None
    description: str
    source: str  # where a user gets the file

    def standard_locations(self) -> list[Path]:
        if self.name == "vgg19":
            return [settings.torch_home() / "hub" / "checkpoints" / self.filename]
        return []


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "niqe",
            "modelparameters.mat",
            "niqe",
            "fa2aa4d12dd9595c3fb6bf8b4e1a15c79d5d1469238d0901c88dead195be578d",
            "NIQE pristine model (mu_prisparam, cov_prisparam) of the LIVE MATLAB release",
            "LIVE NIQE release (also vendored in the PIRM 2018 repository, utils/niqe_release/modelparameters.mat)",
        ),
        Asset(
            "nrqm",
            "NRQM_model.mat",
            "nrqm",
            None,
            "Ma et al.'s NRQM regression model (random forests + linear weights), needed for Ma's score and PI",
            "Ma et al.'s sr-metric release (model.mat) or pyiqa's NRQM_model.mat release file",
        ),
        Asset(
            "vgg19",
            "vgg19-dcbb9e9d.pth",
            "vgg19",
            "dcbb9e9d",
            "VGG19 ImageNet weights (torchvision) for perceptual and texture losses",
            "torchvision's vgg19 ImageNet checkpoint",
        ),
        Asset(
            "enhancenet-pat",
            "weights",
            "EnhanceNet-PAT",
            "4250b3dc5e69c5bd625e90543fd588ce2fff88510f874f9e9394c48c44b96434",
            "official EnhanceNet-PAT ×4 generator (TensorFlow 1 checkpoint; licence CC BY-NC-ND 4.0, research use, "
            "unmodified file only)",
            "the `weights` file of github.com/msmsajjadi/EnhanceNet-Code (commit a7309ca)",
        ),
    )
}


def get_asset(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise ParameterError("name", f"unknown asset {name!r}; known: {', '.join(ASSETS)}") from None


def assets_cache() -> Path:
    return settings.cache_dir() / "assets"


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

"""Model parameter files that metrics, losses and zoo models need: the catalogue (`catalogue`), where a file is
looked for and how it is downloaded (`resolve`)."""

from sreval.assets.catalogue import ASSETS, Asset
from sreval.assets.resolve import (
    AssetMissing,
    add,
    assets_cache,
    checksum_status,
    download,
    downloadable,
    get_asset,
    locate,
    mismatch_of,
    missing_message,
    pins_of,
    resolve,
    search_paths,
    sha256_of,
)

__all__ = [
    "ASSETS",
    "Asset",
    "AssetMissing",
    "add",
    "assets_cache",
    "checksum_status",
    "download",
    "downloadable",
    "get_asset",
    "locate",
    "mismatch_of",
    "missing_message",
    "pins_of",
    "resolve",
    "search_paths",
    "sha256_of",
]

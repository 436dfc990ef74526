"""Model parameter files that metrics, losses and zoo models need: the catalogue (`catalogue`) and where a file
is looked for (`resolve`)."""

from sreval.assets.catalogue import ASSETS, Asset
from sreval.assets.resolve import (
    AssetMissing,
    add,
    assets_cache,
    checksum_status,
    get_asset,
    missing_message,
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
    "get_asset",
    "missing_message",
    "resolve",
    "search_paths",
    "sha256_of",
]

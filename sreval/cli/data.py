"""`sreval data verify|download` and `sreval assets [add|download]`: the benchmark sets and the model files sreval
does not ship."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sreval import settings
from sreval.cli.common import ALL_DATASETS, DATA_ROOT_HELP, Subcommands, split_list
from sreval.download import human_size
from sreval.errors import ParameterError, SrevalError

if TYPE_CHECKING:
    from sreval.assets import Asset


def add_commands(sub: Subcommands) -> None:
    data = sub.add_parser("data", help="verify or download the benchmark sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    verify = data_sub.add_parser("verify", help="check every file against the shipped checksums")
    download = data_sub.add_parser("download", help="fetch the sets from a public mirror (needs network)")
    for p in (verify, download):
        p.add_argument("--datasets", default=ALL_DATASETS)
        p.add_argument("--data-root", help=DATA_ROOT_HELP)
    download.add_argument("--mirror", help="base URL of a mirror with SelfExSR's layout")
    verify.set_defaults(func=cmd_data_verify)
    download.set_defaults(func=cmd_data_download)

    assets = sub.add_parser("assets", help="list the model files sreval does not ship, install or download them")
    assets_sub = assets.add_subparsers(dest="assets_command", metavar="ACTION")
    add = assets_sub.add_parser("add", help="install a local file as an asset (checksum verified when known)")
    add.add_argument("name", help="asset name (see `sreval assets`)")
    add.add_argument("path", type=Path)
    fetch = assets_sub.add_parser("download", help="download assets into the asset cache (verified, needs network)")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="asset names (see `sreval assets`)")
    fetch.add_argument("--all", action="store_true", help="every asset sreval can download")
    assets.set_defaults(func=cmd_assets)


def cmd_data_verify(args: argparse.Namespace) -> int:
    from sreval.datasets.registry import parse_datasets, verify

    root = settings.data_root(args.data_root)
    datasets = parse_datasets(split_list(args.datasets))
    total = sum(len(d.images) for d in datasets)
    if not any((root / e.path).is_file() for d in datasets for e in d.images):
        raise SrevalError(
            f"no benchmark file under {root} (0 of {total} present for {', '.join(d.key for d in datasets)}): set "
            "--data-root or SREVAL_DATA_ROOT to the folder holding Set5/, Set14/, BSD100/, Urban100/, or run "
            f"`sreval data download` to fetch them to {root}"
        )
    failed = 0
    for dataset in datasets:
        problems = verify(dataset, root)
        failed += len(problems)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        present = sum((root / e.path).is_file() for e in dataset.images)
        if not present:  # a whole set absent: one line, not one per file
            folder = (root / dataset.images[0].path).parent
            print(f"{dataset.key}: {len(dataset.images)} files, none present under {folder}")
            continue
        print(f"{dataset.key}: {len(dataset.images)} files, {status}")
        for problem in problems:
            print(f"  {problem}")
    if failed:
        raise SrevalError(f"{failed} file(s) under {root} do not match the manifest (see above)")
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from sreval.datasets.download import DEFAULT_MIRROR, download
    from sreval.datasets.registry import parse_datasets
    from sreval.progress import Progress

    root = settings.data_root(args.data_root)
    for dataset in parse_datasets(split_list(args.datasets)):
        with Progress(len(dataset.images), dataset.key, "file") as bar:
            fetched = download(dataset, root, mirror=args.mirror or DEFAULT_MIRROR, progress=lambda _: bar.update())
        print(f"{dataset.key}: {fetched} downloaded, {len(dataset.images) - fetched} already present, all verified")
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    from sreval import assets

    if args.assets_command == "add":
        target = assets.add(args.name, args.path)
        print(f"installed {args.name} at {target}")
        return 0
    if args.assets_command == "download":
        return _download_assets(args.names, everything=args.all)
    width = max(map(len, assets.ASSETS))
    for asset in assets.ASSETS.values():
        places = assets.search_paths(asset)
        found = next((p for p in places if p.is_file()), None)  # a listing never downloads
        if found is None:
            print(f"{asset.name:<{width}} missing      {asset.filename}: {asset.description}")
        else:
            print(f"{asset.name:<{width}} {assets.checksum_status(asset, found):<12} {found}")
        pad = " " * (width + 1)
        print(f"{pad}licence: {asset.licence}; {human_size(asset.size)}")
        if assets.downloadable(asset):
            print(
                f"{pad}from: {', '.join(asset.urls)}"
                + (f" (`sreval assets download {asset.name}`)" if not found else "")
            )
        else:
            print(
                f"{pad}get it from {asset.source}"
                + (f"; then `sreval assets add {asset.name} PATH`" if not found else "")
            )
        print(f"{pad}looked in: {', '.join(map(str, places))}")
    return 0


def _download_assets(names: list[str], *, everything: bool) -> int:
    """Download each asset; a failure is one `error:` line and the others still go ahead (exit 1 if any failed)."""
    from sreval import assets

    if everything == bool(names):
        raise ParameterError("names", "name the assets to download, or give --all (not both)")
    chosen = [assets.get_asset(n) for n in names] if names else list(assets.ASSETS.values())
    failed = 0
    for asset in chosen:
        try:
            print(_download_asset(asset, skip_manual=everything))
        except SrevalError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _download_asset(asset: Asset, *, skip_manual: bool) -> str:
    from sreval import assets

    cached = assets.assets_cache() / asset.filename
    if not (cached.is_file() and assets.checksum_status(asset, cached) == "mismatch"):  # a bad cached copy is replaced
        try:
            found = assets.locate(asset.name)
            return f"{asset.name}: already present at {found} ({assets.checksum_status(asset, found)})"
        except assets.AssetMissing:
            pass
    if skip_manual and not assets.downloadable(asset):
        return f"{asset.name}: skipped, sreval cannot download it; get it from {asset.source}"
    path = assets.download(asset.name)
    return f"{asset.name}: downloaded {human_size(path.stat().st_size)} to {path}, verified"

"""`sreval data verify|download` and `sreval assets`: the benchmark sets and the model files sreval does not ship."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sreval import settings
from sreval.cli.common import ALL_DATASETS, DATA_ROOT_HELP, Subcommands, split_list
from sreval.errors import SrevalError


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

    assets = sub.add_parser("assets", help="list model parameter files (NIQE, NRQM, VGG19) or install one")
    assets_sub = assets.add_subparsers(dest="assets_command", metavar="ACTION")
    add = assets_sub.add_parser("add", help="install a local file as an asset (checksum verified when known)")
    add.add_argument("name", help="asset name (see `sreval assets`)")
    add.add_argument("path", type=Path)
    assets.set_defaults(func=cmd_assets)


def cmd_data_verify(args: argparse.Namespace) -> int:
    from sreval.datasets.registry import parse_datasets, verify

    root = settings.data_root(args.data_root)
    failed = 0
    for dataset in parse_datasets(split_list(args.datasets)):
        problems = verify(dataset, root)
        failed += len(problems)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"{dataset.key}: {len(dataset.images)} files, {status}")
        for problem in problems:
            print(f"  {problem}")
    if failed:
        raise SrevalError(f"{failed} file(s) under {root} do not match the manifest (see above)")
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sreval.datasets.download import DEFAULT_MIRROR, download
    from sreval.datasets.registry import parse_datasets

    root = settings.data_root(args.data_root)
    for dataset in parse_datasets(split_list(args.datasets)):
        with tqdm(total=len(dataset.images), desc=dataset.key, unit="file", disable=not sys.stderr.isatty()) as bar:
            fetched = download(dataset, root, mirror=args.mirror or DEFAULT_MIRROR, progress=lambda _: bar.update())
        print(f"{dataset.key}: {fetched} downloaded, {len(dataset.images) - fetched} already present, all verified")
    return 0


def cmd_assets(args: argparse.Namespace) -> int:
    from sreval import assets

    if args.assets_command == "add":
        target = assets.add(args.name, args.path)
        print(f"installed {args.name} at {target}")
        return 0
    for asset in assets.ASSETS.values():
        places = assets.search_paths(asset)
        found = next((p for p in places if p.is_file()), None)
        if found is None:
            print(f"{asset.name:<7} missing      {asset.filename}: {asset.description}")
            print(f"        get it from {asset.source}; then `sreval assets add {asset.name} PATH`")
        else:
            print(f"{asset.name:<7} {assets.checksum_status(asset, found):<12} {found}")
        print(f"        looked in: {', '.join(map(str, places))}")
    return 0

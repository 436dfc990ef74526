"""Regenerate sreval/datasets/manifest.csv from a verified copy of the benchmark sets.

Maintainer tool, not part of the package: run it once against a trusted data root, review the diff, commit.
Set5/Set14 images get their usual names (baby, baboon, ...) from the data root's names.csv; the others keep
their index (img_001, ...).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from pathlib import Path

from PIL import Image

SETS = {"set5": "Set5", "set14": "Set14", "bsd100": "BSD100", "urban100": "Urban100"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "sreval/datasets/manifest.csv")
    args = parser.parse_args()

    names: dict[tuple[str, str], str] = {}
    names_csv = args.data_root / "names.csv"
    if names_csv.exists():
        with names_csv.open() as f:
            for row in csv.DictReader(f):
                names[(row["set"], row["file_stem"])] = row["name"]

    rows = []
    for key, folder in SETS.items():
        for path in sorted((args.data_root / folder / "HR").glob("*.png")):
            stem = path.stem.removesuffix("_HR")
            name = names.get((folder, stem), stem.removesuffix("_SRF_4"))
            with Image.open(path) as im:
                width, height = im.size
                channels = len(im.getbands())
            rows.append({
                "dataset": key,
                "image": name,
                "path": path.relative_to(args.data_root).as_posix(),
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "bytes": path.stat().st_size,
                "width": width,
                "height": height,
                "channels": channels,
            })
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()

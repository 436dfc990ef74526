"""Stages what the one GPU run (`perf/gpu_run.sh`) needs into a folder that travels with the working tree.

The lent GPU machine has no network and no `../shared`: it sees the repository and the paths a run names in
`carry`, at most 64 MiB together. This script fills the stage folder (default `.gpu/`, ignored by git) with

- `data/benchmarks/{Set5,Set14,BSD100}/HR/`: the HR images, byte for byte (sreval checks their sha256);
- `data/benchmarks/Urban100/HR/`: only the first `--urban100` images (the whole set is 136 MB), for the
  per-image perceptual timings; Urban100 is not benchmarked on the GPU;
- `data/training/T91/` and `data/iqa/calibration_pyiqa/dist_dir/`: T91 and the PIRM calibration images as
  lossless PNG (smaller than their BMPs; `check_staged` compares every pixel with the original);
- `data/iqa/niqe/`: the NIQE model files;
- `packages/`: what the device's python3 lacks. sqlalchemy as a CPython 3.12 manylinux wheel (unpacked there
  by `perf/gpu_run.py` into a temporary folder), and pyiqa's package folder alone, unpacked under
  `packages/site/` (its wheel also carries 8 MB of test images and docs). pyiqa's licence is non-commercial
  (research use); it is only used to time sreval against it.

It then sums what would travel (the files git tracks or does not ignore, plus the stage folder) and stops with
one `error:` line if that is over the limit, or if any staged file is not what it should be.

    python perf/gpu_stage.py [--data-root ../shared/data] [--stage .gpu] [--urban100 3] [--no-packages]

`--no-packages` stages the data only (tests, and machines without a package index).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
#: What one device call may carry: the working tree and the carried paths together.
LIMIT_BYTES = 64 << 20
#: Room left for files added after staging (a commit, a log) before the limit bites.
MARGIN_BYTES = 2 << 20
BENCHMARK_SETS = ("Set5", "Set14", "BSD100")
PACKAGES_PYTHON = "3.12"  # the device's python3
SQLALCHEMY = "sqlalchemy==2.1.9"
PYIQA = "pyiqa==0.1.16"
MANIFEST = "STAGED.json"


class StageError(Exception):
    pass


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_exact(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def as_png(source: Path, target: Path) -> None:
    """`source` re-encoded as PNG (lossless: `check_staged` compares the pixels)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.save(target, optimize=True)


def same_pixels(a: Path, b: Path) -> bool:
    with Image.open(a) as x, Image.open(b) as y:
        return x.mode == y.mode and x.size == y.size and np.array_equal(np.asarray(x), np.asarray(y))


def pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if result.returncode:
        raise StageError(f"pip {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def stage_packages(packages: Path) -> dict[str, str]:
    """sqlalchemy's cp312 wheel and pyiqa's package folder; returns {import name: what was staged}."""
    wheels = packages / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    platform_args = [a for p in platforms for a in ("--platform", p)]
    pip("download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", PACKAGES_PYTHON,
        "--implementation", "cp", *platform_args, "-d", str(wheels), SQLALCHEMY)  # fmt: skip
    # The wheel must be one the device's Python can import: resolve it as pip would there, installing nothing.
    with tempfile.TemporaryDirectory() as target:
        pip("install", "-q", "--dry-run", "--no-index", "--no-deps", "--only-binary=:all:", "--target", target,
            "--python-version", PACKAGES_PYTHON, "--implementation", "cp", *platform_args,
            "--find-links", str(wheels), SQLALCHEMY)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        pip("download", "-q", "--no-deps", "-d", tmp, PYIQA)
        (wheel,) = Path(tmp).glob("pyiqa-*.whl")
        site = packages / "site"
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m.startswith(("pyiqa/", "pyiqa-"))]
            archive.extractall(site, members)
    (sqlalchemy_wheel,) = wheels.glob("sqlalchemy-*.whl")
    return {"sqlalchemy": f"wheels/{sqlalchemy_wheel.name}", "pyiqa": "site/pyiqa"}


def stage(data_root: Path, out: Path, urban100: int, packages: bool) -> dict[str, object]:
    """Fills `out` (emptied first) and returns the manifest it writes."""
    if not (data_root / "benchmarks" / "Set5" / "HR").is_dir():
        raise StageError(f"{data_root} holds no benchmarks/Set5/HR: give --data-root (the shared data folder)")
    if out.exists():
        shutil.rmtree(out)
    files: dict[str, str] = {}  # staged path → source path, for the checks

    def put(sources: list[Path], folder: str, as_png_files: bool = False) -> None:
        """`sources` into data/`folder`: byte for byte, or re-encoded as lossless PNG."""
        for source in sources:
            target = out / "data" / folder / (source.stem + ".png" if as_png_files else source.name)
            (as_png if as_png_files else copy_exact)(source, target)
            files[str(target.relative_to(out))] = str(source)

    benchmarks = data_root / "benchmarks"
    for name in BENCHMARK_SETS:
        put(sorted((benchmarks / name / "HR").iterdir()), f"benchmarks/{name}/HR")
    put(sorted((benchmarks / "Urban100" / "HR").glob("*.png"))[:urban100], "benchmarks/Urban100/HR")
    for folder in ("training/T91", "iqa/calibration_pyiqa/dist_dir"):
        put(sorted((data_root / folder).iterdir()), folder, as_png_files=True)
    put(sorted((data_root / "iqa" / "niqe").iterdir()), "iqa/niqe")
    staged_packages = stage_packages(out / "packages") if packages else {}
    manifest: dict[str, object] = {"data_root": str(data_root), "files": files, "packages": staged_packages}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def check_staged(out: Path) -> None:
    """Every staged file is its source: the same bytes, or for a re-encoded PNG the same pixels."""
    manifest = json.loads((out / MANIFEST).read_text())
    for staged, source in manifest["files"].items():
        a, b = out / staged, Path(source)
        exact = a.suffix == b.suffix
        if not a.is_file() or (sha256(a) != sha256(b) if exact else not same_pixels(a, b)):
            raise StageError(f"{a} is not {'a copy' if exact else 'a lossless PNG'} of {b}")


def travelling_bytes(stage_dir: Path) -> tuple[int, int]:
    """(bytes of the repository's files that travel, bytes of the stage folder)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    repo = sum(p.stat().st_size for name in listed if name and (p := REPO / name).is_file() and not p.is_symlink())
    staged = sum(p.stat().st_size for p in stage_dir.rglob("*") if p.is_file())
    return repo, staged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--stage", type=Path, default=REPO / ".gpu", help="stage folder (emptied first)")
    parser.add_argument("--urban100", type=int, default=3, help="Urban100 images for the perceptual timings")
    parser.add_argument("--no-packages", action="store_true", help="data only: no wheel, no pyiqa")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_BYTES / 2**20, help="what a device call carries")
    args = parser.parse_args()
    try:
        stage(args.data_root.resolve(), args.stage.resolve(), args.urban100, not args.no_packages)
        check_staged(args.stage.resolve())
        repo, staged = travelling_bytes(args.stage.resolve())
    except StageError as error:
        raise SystemExit(f"error: {error}") from None
    total, limit = repo + staged, args.limit_mib * 2**20
    print(f"staged {args.stage}: {staged / 2**20:.1f} MiB; repository files that travel: {repo / 2**20:.1f} MiB; "
          f"together {total / 2**20:.1f} MiB of {args.limit_mib:g} MiB")  # fmt: skip
    if total > limit - MARGIN_BYTES:
        raise SystemExit(
            f"error: {total / 2**20:.1f} MiB would travel, over the {args.limit_mib:g} MiB a device call carries "
            f"(less a margin of {MARGIN_BYTES / 2**20:.0f} MiB): stage fewer Urban100 images"
        )


if __name__ == "__main__":
    main()

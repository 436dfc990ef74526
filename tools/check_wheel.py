"""Builds sreval's wheel, installs it (without dependencies) into a throwaway virtual environment, and lists the
zoo from outside the source tree: the built-in entries must come from the installed package data.

Maintainer check, not part of the package. The environment borrows this interpreter's site-packages for
torch and the other dependencies (on PYTHONPATH), so nothing is downloaded. Exits non-zero, saying why, when
the wheel lacks an entry, carries a file that is not a config, a card or the weights of a model sreval trained
itself (third-party weights must never ship), or the installed zoo finds its entries anywhere but in its own
package folder.

    python tools/check_wheel.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BUILTIN_PREFIX = "sreval/zoo/builtin/"
#: What the installed package is asked: where its built-in root is, what it holds, and where sreval lives.
PROBE = """
import json, sreval
from sreval import zoo
entries = zoo.list_models([zoo.builtin_dir()])
print(json.dumps({"package": sreval.__file__, "builtin": str(zoo.builtin_dir()),
                  "entries": {e.name: str(e.folder) for e in entries},
                  "roots": [str(r) for r in zoo.zoo_roots()]}))
"""


def trained_here(entry: Path) -> bool:
    """Whether a models/ entry's weights are sreval's own (status `trained`): the only weights a wheel may carry."""
    config = yaml.safe_load((entry / "config.yaml").read_text())
    return bool(config["weights"]["status"] == "trained" and config["weights"]["file"] == "model.safetensors")


def expected_files() -> set[str]:
    """The repository's models/ as the wheel must carry it: the index card, each entry's config and card, and the
    weights of the models sreval trained itself."""
    models = REPO / "models"
    files = {"README.md"} | {
        str(p.relative_to(models))
        for p in models.glob("*/*")
        if p.name in ("config.yaml", "README.md") or (p.name == "model.safetensors" and trained_here(p.parent))
    }
    return {BUILTIN_PREFIX + f for f in files}


def build_wheel(work: Path) -> Path:
    """The wheel of a copy of the checkout, so that the build's own folders (build/, *.egg-info) stay out of it."""
    source = work / "source"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*_cache", "tests")
    shutil.copytree(REPO, source, symlinks=True, ignore=skip)  # the zoo's built-in link stays a link into the copy
    out = work / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
    )
    (wheel,) = out.glob("sreval-*.whl")
    return wheel


def check_contents(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith(BUILTIN_PREFIX)}
    problems = [f"the wheel lacks {name}" for name in sorted(expected_files() - shipped)]
    extra = sorted(shipped - expected_files())
    problems += [f"the wheel carries {name}, which is not a config, a card or weights sreval trained" for name in extra]
    return problems


def install_and_probe(wheel: Path, work: Path) -> dict[str, object]:
    env_dir = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], check=True
    )
    # the dependencies come from this interpreter's site-packages; .pth files there (the editable install of the
    # checkout) are not processed for PYTHONPATH entries, so `sreval` can only come from the new environment
    deps = sysconfig.get_paths()["purelib"]
    run = subprocess.run(
        [str(python), "-c", PROBE],
        check=True,
        capture_output=True,
        text=True,
        cwd=work,
        env={"PYTHONPATH": deps, "HOME": str(work), "PATH": "/usr/bin:/bin"},
    )
    result: dict[str, object] = json.loads(run.stdout)
    return result


def check_probe(probe: dict[str, object], env_dir: Path) -> list[str]:
    problems = []
    package = Path(str(probe["package"])).resolve()
    if env_dir.resolve() not in package.parents:
        problems.append(f"sreval was imported from {package}, not from the throwaway environment {env_dir}")
    builtin = Path(str(probe["builtin"]))
    if REPO in builtin.resolve().parents or builtin.resolve() == REPO / "models":
        problems.append(f"the built-in root {builtin} is in the source checkout")
    entries = probe["entries"]
    assert isinstance(entries, dict)
    wanted = {p.parent.name for p in (REPO / "models").glob("*/config.yaml")}
    if set(entries) != wanted:
        problems.append(f"the installed zoo lists {sorted(entries)}, expected {sorted(wanted)}")
    problems += [
        f"{name} was found at {folder}"
        for name, folder in entries.items()
        if package.parent not in Path(folder).resolve().parents
    ]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        wheel = build_wheel(work)
        problems = check_contents(wheel)
        probe = install_and_probe(wheel, work)
        problems += check_probe(probe, work / "venv")
        print(f"wheel: {wheel.name}\nbuilt-in root: {probe['builtin']}")
        for name, folder in sorted(dict(probe["entries"]).items()):  # type: ignore[call-overload]
            print(f"  {name}: {folder}")
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

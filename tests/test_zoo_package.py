"""The built-in zoo entries ship as package data of `sreval.zoo`: found in the package's own folder (in a
checkout a link to the repository's models/, the copy that is edited), covered exactly by the wheel's
package-data patterns, never with third-party weights; and a wheel installed outside the checkout lists them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from sreval import zoo

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"


def test_builtin_entries_are_found_in_the_package_folder_not_the_checkout() -> None:
    package = Path(zoo.__file__).resolve().parent
    builtin = zoo.builtin_dir()
    assert builtin == package / "builtin"
    assert MODELS not in builtin.parents and builtin != MODELS  # the path the zoo uses is the package's
    entries = zoo.list_models([builtin])
    assert entries and all(e.folder.parent == builtin for e in entries)
    assert builtin in zoo.zoo_roots() and MODELS not in zoo.zoo_roots()


def test_the_package_folder_is_the_repository_models_folder() -> None:
    """One copy of the entries: the package folder shows exactly the files of models/."""
    builtin = zoo.builtin_dir()
    files = sorted(p.relative_to(MODELS) for p in MODELS.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(builtin) for p in builtin.rglob("*") if p.is_file())
    for relative in files:
        assert (builtin / relative).read_bytes() == (MODELS / relative).read_bytes()


def test_package_data_patterns_cover_every_config_and_card_and_nothing_else() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["sreval"]
    package = REPO / "sreval"
    shipped = {p.resolve() for pattern in patterns if pattern.startswith("zoo/") for p in package.glob(pattern)}
    in_models = {p.resolve() for p in MODELS.rglob("*") if p.is_file()}
    assert shipped == in_models
    # configs and model cards, and weights only of a model sreval trained itself: a third-party weights file
    # (which sreval may not redistribute) could never match
    for path in shipped:
        assert path.name in ("config.yaml", "README.md") or (
            path.name == "model.safetensors" and _check_wheel().trained_here(path.parent)
        ), path


def _check_wheel() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_wheel", REPO / "tools" / "check_wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheel_check_refuses_weights_and_missing_entries(tmp_path: Path) -> None:
    check = _check_wheel()
    expected = sorted(check.expected_files())
    wheel = tmp_path / "sreval-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in expected[1:]:
            archive.writestr(name, "")
        archive.writestr("sreval/zoo/builtin/enhancenet-pat-official/weights", b"not ours to ship")
    problems = check.check_contents(wheel)
    assert problems == [
        f"the wheel lacks {expected[0]}",
        "the wheel carries sreval/zoo/builtin/enhancenet-pat-official/weights, which is not a config, a card or "
        "weights sreval trained",
    ]


@pytest.mark.slow
def test_an_installed_wheel_lists_the_builtin_entries_from_its_package_data() -> None:
    """Builds the wheel, installs it into a throwaway environment and lists the zoo from outside the checkout."""
    run = subprocess.run([sys.executable, str(REPO / "tools" / "check_wheel.py")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "site-packages/sreval/zoo/builtin/enhancenet-pat-official" in run.stdout

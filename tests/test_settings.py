"""Settings: every folder sreval keeps things in comes from one function in sreval.settings, over one XDG
fallback, and no other module re-derives the XDG folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sreval import settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("SREVAL_DATA_ROOT", "SREVAL_CACHE", "SREVAL_DB", "SREVAL_ZOO", "SREVAL_TRAINING_ROOT",
                "SREVAL_STUDIES", "TORCH_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_defaults_under_the_xdg_folders(xdg: Path) -> None:
    assert settings.data_root() == xdg / "data" / "sreval" / "datasets"
    assert settings.cache_dir() == xdg / "cache" / "sreval"
    assert settings.db_url() == f"sqlite:///{xdg / 'data' / 'sreval' / 'results.sqlite'}"
    assert settings.zoo_dirs() == [xdg / "data" / "sreval" / "zoo"]
    assert settings.training_root() == xdg / "data" / "sreval" / "training"
    assert settings.study_root() == xdg / "data" / "sreval" / "studies"
    assert settings.torch_home() == xdg / "cache" / "torch"


def test_explicit_then_environment(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(xdg / "env"))
    monkeypatch.setenv("SREVAL_STUDIES", str(xdg / "env-studies"))
    monkeypatch.setenv("SREVAL_ZOO", f"{xdg / 'a'}{os.pathsep}{os.pathsep}{xdg / 'b'}")
    monkeypatch.setenv("TORCH_HOME", str(xdg / "torch"))
    assert settings.training_root(xdg / "flag") == xdg / "flag" and settings.training_root() == xdg / "env"
    assert settings.study_root() == xdg / "env-studies"
    assert settings.zoo_dirs() == [xdg / "a", xdg / "b"]
    assert settings.torch_home() == xdg / "torch"


def test_home_folders_are_derived_only_in_settings() -> None:
    needles = ('environ.get("XDG_', 'environ["XDG_', 'getenv("XDG_', 'environ.get("TORCH_HOME"', "Path.home()")
    offenders = sorted(
        p.relative_to(REPO).as_posix()
        for folder in ("sreval", "raters_app", "perf")
        for p in (REPO / folder).rglob("*.py")
        if p.name != "settings.py" and any(n in p.read_text(encoding="utf-8") for n in needles)
    )
    assert offenders == []

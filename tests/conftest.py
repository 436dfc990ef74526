"""Shared pytest fixtures: benchmark data, PostgreSQL, and the pilot MOS study."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from db_helpers import copy_database
from study_helpers import build

from sreval.db.scratch import scratch_database
from sreval.study import StudyStore, open_study_store

# --- Benchmark data ---------------------------------------------------------------------------------------
# Tests that need the benchmark data (SREVAL_DATA_ROOT) or the other shared reference files skip without it,
# except when SREVAL_REQUIRE_DATA=1 (CI), where a missing data root fails.


def _require(what: str) -> NoReturn:
    if os.environ.get("SREVAL_REQUIRE_DATA") == "1":
        pytest.fail(f"{what} is required (SREVAL_REQUIRE_DATA=1) but not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The benchmark data root (Set5/HR, ...), as the user would set it, made absolute (CI gives a relative path,
    and tests that run commands in another folder or link to the data need one that holds there too)."""
    env = os.environ.get("SREVAL_DATA_ROOT")
    if not env or not (Path(env) / "Set5" / "HR").is_dir():
        _require("SREVAL_DATA_ROOT with Set5/HR, Set14/HR, BSD100/HR, Urban100/HR")
    return Path(env).resolve()


@pytest.fixture(scope="session")
def method_results(data_root: Path) -> Path:
    """Published method outputs and tables (`method_results/x4` beside the benchmarks folder)."""
    path = data_root.parent / "method_results" / "x4"
    if not path.is_dir():
        _require(f"published method results at {path}")
    return path


@pytest.fixture(scope="session")
def enhancenet_weights(data_root: Path) -> Path:
    """The official EnhanceNet-PAT checkpoint (`method_weights/EnhanceNet-PAT/weights` beside the benchmarks)."""
    path = data_root.parent / "method_weights" / "EnhanceNet-PAT" / "weights"
    if not path.is_file():
        _require(f"the official EnhanceNet-PAT weights at {path}")
    return path


# --- Isolated settings ------------------------------------------------------------------------------------
# Everything sreval would read from or write to the user's folders points into the test's tmp_path instead.


@pytest.fixture(autouse=True)
def _no_user_settings_or_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test: no user config file and no model file downloaded on first use (tests of either opt back in)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("SREVAL_OFFLINE", "1")
    monkeypatch.delenv("SREVAL_ASSETS_DIR", raising=False)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sreval's and torch's caches under tmp_path, and no assets folder: no model file is found outside the test."""
    monkeypatch.setenv("SREVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SREVAL_ASSETS", raising=False)
    return tmp_path


@pytest.fixture
def env(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The benchmark data as the user sets it; the cache, results database, zoo and XDG data under tmp_path."""
    monkeypatch.setenv("SREVAL_DATA_ROOT", str(data_root))
    monkeypatch.setenv("SREVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SREVAL_DB", f"sqlite:///{tmp_path / 'results.sqlite'}")
    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path


# --- PostgreSQL -------------------------------------------------------------------------------------------
# Tests marked `postgres` need a server: `eval "$(bash .ci/postgres.sh)"` starts one and sets
# SREVAL_TEST_PG_URL. Without it they skip, unless SREVAL_REQUIRE_PG=1 (CI), where they fail instead.


@pytest.fixture
def pg_url() -> str:
    """URL of the PostgreSQL test server (SREVAL_TEST_PG_URL)."""
    if url := os.environ.get("SREVAL_TEST_PG_URL"):
        return url
    if os.environ.get("SREVAL_REQUIRE_PG") == "1":
        pytest.fail('SREVAL_REQUIRE_PG=1 but SREVAL_TEST_PG_URL is not set; run: eval "$(bash .ci/postgres.sh)"')
    pytest.skip('no PostgreSQL server: set SREVAL_TEST_PG_URL (eval "$(bash .ci/postgres.sh)")')


@pytest.fixture
def pg_database_url(pg_url: str) -> Iterator[str]:
    """A new empty database on the test server, dropped after the test, so PostgreSQL tests stay independent."""
    with scratch_database(pg_url, "sreval_test_") as url:
        yield url


# --- The pilot MOS study ----------------------------------------------------------------------------------
# One small study (study_helpers.py) built once per test module; each test gets a private copy of its database.
# A module that needs another study (the rater app's) overrides `template` alone: `url` and `store` follow it.


@pytest.fixture(scope="module")
def sr_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SR outputs shared by every study built in this module (rendering is the slow part)."""
    return tmp_path_factory.mktemp("sr-cache")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, data_root: Path, sr_cache: Path) -> Path:
    """The pilot study, built once: its database file (copied per test) and its stimulus folder."""
    root = tmp_path_factory.mktemp("template")
    with open_study_store(f"sqlite:///{root / 'study.sqlite'}") as store:
        build(store, root, data_root, sr_cache)
    return root


@pytest.fixture
def url(template: Path, tmp_path: Path) -> str:
    """A private copy of the template study's database (the stimulus files stay shared and are only read)."""
    return copy_database(template, tmp_path)


@pytest.fixture
def store(url: str) -> Iterator[StudyStore]:
    with open_study_store(url) as opened:
        yield opened

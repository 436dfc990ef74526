"""Shared pytest fixtures: benchmark data and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

# --- Benchmark data ---------------------------------------------------------------------------------------
# Tests that need the benchmark data (SREVAL_DATA_ROOT) or the other shared reference files skip without it,
# except when SREVAL_REQUIRE_DATA=1 (CI), where a missing data root fails.


def _require(what: str) -> None:
    if os.environ.get("SREVAL_REQUIRE_DATA") == "1":
        pytest.fail(f"{what} is required (SREVAL_REQUIRE_DATA=1) but not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The benchmark data root (Set5/HR, ...), as the user would set it."""
    env = os.environ.get("SREVAL_DATA_ROOT")
    if not env or not (Path(env) / "Set5" / "HR").is_dir():
        _require("SREVAL_DATA_ROOT with Set5/HR, Set14/HR, BSD100/HR, Urban100/HR")
    return Path(env)


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
    name = f"sreval_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.dispose()

"""The study tables in the database: migration from versions 2 and 3, opening errors and WAL, and the core
flow on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from db_helpers import execute
from sqlalchemy import create_engine, inspect, text
from study_helpers import PER_RATER, STUDY, STUDY_TABLES, build, counts, rate, snapshot

from sreval.db.tables import Base
from sreval.errors import SrevalError
from sreval.results import open_store
from sreval.study import (
    RequestRefused,
    open_study_store,
)
from sreval.study.simulate import simulate


def schema(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {
            t: (
                sorted((c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(t)),
                sorted((u["name"] or "", tuple(u["column_names"])) for u in found.get_unique_constraints(t)),
                sorted(
                    (f["name"] or "", tuple(f["constrained_columns"]), f["referred_table"])
                    for f in found.get_foreign_keys(t)
                ),
                sorted(c["name"] for c in found.get_check_constraints(t)),
                sorted((i["name"] or "", tuple(i["column_names"])) for i in found.get_indexes(t)),
                found.get_pk_constraint(t)["constrained_columns"],
            )
            for t in STUDY_TABLES
        }
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/empty.sqlite"
    return str(request.getfixturevalue("pg_database_url"))


def test_version_2_database_is_migrated_to_the_study_schema(empty_url: str, tmp_path: Path) -> None:
    open_store(empty_url).close()
    fresh = schema(empty_url)
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in STUDY_TABLES:
                conn.execute(text(f"DROP TABLE {table.name}"))
        conn.execute(text("UPDATE schema_version SET version = 2"))
    engine.dispose()

    with open_study_store(empty_url) as store:
        assert store.list_studies().empty
    assert schema(empty_url) == fresh
    assert fresh["study_ratings"][3] == ["ck_study_ratings_response_ms", "ck_study_ratings_score"]
    with open_store(empty_url) as results:  # the results store opens the same database
        assert results.list_runs().empty


def test_version_3_database_gains_the_problems_table(empty_url: str) -> None:
    open_store(empty_url).close()
    fresh = schema(empty_url)
    execute(empty_url, "DROP TABLE study_problems", "UPDATE schema_version SET version = 3")
    with open_study_store(empty_url) as store:
        assert store.list_studies().empty
    assert schema(empty_url) == fresh and "study_problems" in fresh


def test_open_errors_and_wal(tmp_path: Path) -> None:
    with pytest.raises(SrevalError, match="not in memory"):
        open_study_store("sqlite://")
    with open_study_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as store:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
        with pytest.raises(SrevalError, match=r"no study named 'nope'.*holds none"):
            store.status("nope")
        assert store.rater_for_token("whatever") is None


def test_core_flow(empty_url: str, tmp_path: Path, data_root: Path, sr_cache: Path) -> None:
    with open_study_store(empty_url) as store:
        build(store, tmp_path, data_root, sr_cache)
        ((_, token),) = store.invite(STUDY, 1)
        store.give_consent(token)
        rate(store, token, 3)
        due = store.next_item(token)
        assert due is not None and due.position == 3
        before = snapshot(empty_url)
        for args in ((token, due.stimulus, due.repetition, 6), (token, "forged", 1, 3), ("forged", due.stimulus, 1, 3)):
            with pytest.raises(RequestRefused):
                store.submit(*args)
        assert snapshot(empty_url) == before
        result = simulate(store, STUDY, raters=3, workers=2, seed=1)
        assert result.ratings == 3 * PER_RATER
        assert len(store.export(STUDY)) == 3 and len(store.export(STUDY, include_simulated=True)) == 3 + 3 * PER_RATER
        store.close_study(STUDY)
        with pytest.raises(RequestRefused, match="closed"):
            store.submit(token, due.stimulus, due.repetition, 3)
        assert counts(empty_url)["study_ratings"] == 3 + 3 * PER_RATER

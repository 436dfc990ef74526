"""Schema versions of the sreval database on SQLite and PostgreSQL: a fresh database at the latest version, pending
steps applied in one transaction, newer or unversioned databases refused, real migrations keeping the data."""

from __future__ import annotations

import pytest
import test_store
from db_helpers import execute
from sqlalchemy import Connection, create_engine, inspect, text
from test_store import column_names, make_run, schema_version

from sreval.db import migrations
from sreval.db.tables import Base
from sreval.errors import SrevalError
from sreval.results import open_store

#: An empty database on each backend (the fixture of the results store tests).
url = test_store.url

# --- schema versions --------------------------------------------------------------------------------------

#: Columns per table at each schema version. Changing `models` without adding a migration fails
#: `test_models_match_the_latest_snapshot`; add the new version here together with its migration.
SCHEMA_SNAPSHOTS: dict[int, dict[str, set[str]]] = {
    1: {
        "schema_version": {"version"},
        "runs": {
            "id", "command", "started_at", "finished_at", "sreval_version", "git_commit", "protocol", "device",
            "timings", "dataset_checksums",
        },
        "methods": {"id", "identity", "name", "metadata"},
        "images": {"id", "dataset", "name", "sha256"},
        "run_methods": {"run_id", "method_id", "position"},
        "run_images": {"run_id", "image_id", "position"},
        "metric_values": {"id", "run_id", "method_id", "image_id", "metric", "value"},
    },
}  # fmt: skip
SCHEMA_SNAPSHOTS[2] = {**SCHEMA_SNAPSHOTS[1], "metric_cache": {"pair_key", "metric_key", "value"}}
SCHEMA_SNAPSHOTS[3] = {
    **SCHEMA_SNAPSHOTS[2],
    "studies": {"id", "name", "created_at", "closed_at", "seed", "folder", "settings"},
    "study_methods": {"id", "study_id", "name", "position", "metadata"},
    "study_images": {"id", "study_id", "dataset", "name", "sha256"},
    "study_stimuli": {"id", "study_id", "public_id", "method_id", "image_id", "kind", "path", "expected"},
    "study_raters": {
        "id", "study_id", "number", "public_id", "token_sha256", "seed", "simulated", "created_at", "consent_at",
        "started_at", "finished_at",
    },
    "study_schedule": {"rater_id", "position", "stimulus_id", "repetition", "phase"},
    "study_ratings": {"id", "rater_id", "stimulus_id", "repetition", "score", "response_ms", "created_at", "simulated"},
}  # fmt: skip
SCHEMA_SNAPSHOTS[4] = {
    **SCHEMA_SNAPSHOTS[3],
    "study_problems": {"id", "rater_id", "stimulus_id", "problem", "created_at"},
}
LATEST = 4


def test_models_match_the_latest_snapshot() -> None:
    models = {name: {c.name for c in table.columns} for name, table in Base.metadata.tables.items()}
    assert models == SCHEMA_SNAPSHOTS[migrations.latest_version()], "schema changed: add a migration step"


def test_fresh_database_is_created_at_the_latest_version(url: str) -> None:
    open_store(url).close()
    assert schema_version(url) == migrations.latest_version() == LATEST
    assert {t: column_names(url, t) for t in Base.metadata.tables} == SCHEMA_SNAPSHOTS[LATEST]
    open_store(url).close()  # opening again changes nothing
    assert schema_version(url) == LATEST


def add_comment_column(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE runs ADD COLUMN comment VARCHAR(200) DEFAULT 'migrated'"))


def test_pending_migration_is_applied(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_store(url) as store:
        run_id = store.save_run(make_run())
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, add_comment_column])

    with open_store(url) as store:
        assert store.get_run(run_id) == make_run()
    assert schema_version(url) == LATEST + 1
    assert "comment" in column_names(url, "runs")


def test_failing_migration_leaves_the_database_untouched(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(url).close()

    def broken_step(conn: Connection) -> None:
        raise RuntimeError("migration bug")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, add_comment_column, broken_step])
    with pytest.raises(RuntimeError, match="migration bug"):
        open_store(url)

    assert schema_version(url) == LATEST
    assert "comment" not in column_names(url, "runs")  # the DDL of step 1 was rolled back too


def test_newer_database_is_refused(url: str) -> None:
    open_store(url).close()
    execute(url, "UPDATE schema_version SET version = 7")

    message = rf"database schema version 7 is newer than this sreval \(knows up to {LATEST}\); upgrade sreval"
    with pytest.raises(SrevalError, match=message):
        open_store(url)


def test_sreval_tables_without_version_are_refused(url: str) -> None:
    open_store(url).close()
    execute(url, "DROP TABLE schema_version")

    with pytest.raises(SrevalError, match="no schema_version table"):
        open_store(url)


def test_version_1_database_gets_the_metric_cache(url: str) -> None:
    """A real migration: a database as sreval 0.1 wrote it (schema 1, no metric_cache) keeps its runs and gains
    the cache table."""
    with open_store(url) as store:
        run_id = store.save_run(make_run())
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):  # dependents first
            if table.name not in SCHEMA_SNAPSHOTS[1]:
                conn.execute(text(f"DROP TABLE {table.name}"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
    engine.dispose()
    engine = create_engine(url)
    assert "metric_cache" not in inspect(engine).get_table_names()
    engine.dispose()

    with open_store(url) as store:
        assert store.get_run(run_id) == make_run()
        store.cache_metrics({"pair": {"psnr@k": 31.5}})
        assert store.cached_metrics("pair") == {"psnr@k": 31.5}
    assert schema_version(url) == LATEST
    assert column_names(url, "metric_cache") == SCHEMA_SNAPSHOTS[2]["metric_cache"]


def test_metric_cache_keeps_the_first_value_per_key(url: str) -> None:
    with open_store(url) as store:
        assert store.cached_metrics("p") == {}
        store.cache_metrics({"p": {"a": 1.0, "b": 2.0}})
        store.cache_metrics({"p": {"b": 9.0, "c": 3.0}})  # same key, same number by construction: not rewritten
        store.cache_metrics({"q": {}})
        assert store.cached_metrics("p") == {"a": 1.0, "b": 2.0, "c": 3.0}
        assert store.cached_metrics("q") == {}

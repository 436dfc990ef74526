"""Schema versioning of the results database: a tiny stand-in for Alembic.

Why not Alembic: the store has a handful of tables that are identical on SQLite and PostgreSQL, and users
open it from a pip-installed package, where Alembic's `alembic.ini`, `env.py` and revision folder would have
to be shipped, found and kept in sync for no gain. What we need from it fits in this file:

* the `schema_version` table holds one row, the version the database is at;
* `MIGRATIONS[i]` is a plain function that upgrades a database from version `i + 1` to `i + 2`
  (version 1 is the first released schema);
* `upgrade` runs in ONE transaction (the SQLite engine is set up for transactional DDL in `api`): a fresh
  database gets the latest tables straight from `models` and is stamped with the latest version, an older
  one gets its pending steps in order, and a failing step leaves the database exactly as it was;
* a database newer than this code is refused rather than half understood.

A migration step receives the open `Connection` and may use DDL (`ALTER TABLE ...`) and data updates;
it must produce exactly the schema that `models` then describes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Column, Connection, Double, MetaData, String, Table, insert, inspect, select, update

from sreval.errors import SrevalError
from sreval.store.models import Base, SchemaVersion

log = logging.getLogger(__name__)

Migration = Callable[[Connection], None]

def _v2_metric_cache(conn: Connection) -> None:
    """Version 2: per-image metric values cached by content (the table as it was at version 2, spelled out so
    that later model changes do not alter what this step creates)."""
    table = Table(
        "metric_cache",
        MetaData(),
        Column("pair_key", String(64), primary_key=True),
        Column("metric_key", String(400), primary_key=True),
        Column("value", Double, nullable=False),
    )
    table.create(conn)


#: Upgrade steps in order; `MIGRATIONS[i]` takes a database from version i + 1 to version i + 2.
MIGRATIONS: list[Migration] = [_v2_metric_cache]


def latest_version() -> int:
    """The schema version this sreval writes: 1 plus the number of upgrade steps."""
    return 1 + len(MIGRATIONS)


def upgrade(conn: Connection) -> int:
    """Bring the database behind `conn` to the latest version inside the caller's transaction; return it."""
    latest = latest_version()
    tables = set(inspect(conn).get_table_names())
    if SchemaVersion.__tablename__ not in tables:
        ours = sorted(tables & set(Base.metadata.tables))
        if ours:
            raise SrevalError(f"database has sreval tables ({', '.join(ours)}) but no schema_version table")
        Base.metadata.create_all(conn)
        conn.execute(insert(SchemaVersion).values(version=latest))
        log.info("created results database schema at version %d", latest)
        return latest

    version = conn.execute(select(SchemaVersion.version)).scalar_one()
    if version > latest:
        raise SrevalError(
            f"database schema version {version} is newer than this sreval (knows up to {latest}); upgrade sreval"
        )
    for step in range(version, latest):
        log.info("migrating results database from schema version %d to %d", step, step + 1)
        MIGRATIONS[step - 1](conn)
    if version < latest:
        conn.execute(update(SchemaVersion).values(version=latest))
    return latest

"""Schema versioning of the results database: a tiny stand-in for Alembic.

Why not Alembic: the store has a handful of tables that are identical on SQLite and PostgreSQL, and users
open it from a pip-installed package, where Alembic's `alembic.ini`, `env.py` and revision folder would have
to be shipped, found and kept in sync for no gain. What we need from it fits in this file:

* the `schema_version` table holds one row, the version the database is at;
* `MIGRATIONS[i]` is a plain function that upgrades a database from version `i + 1` to `i + 2`
  (version 1 is the first released schema);
* `upgrade` runs in ONE transaction (the SQLite engine is set up for transactional DDL in `engine`): a fresh
  database gets the latest tables straight from `tables` and is stamped with the latest version, an older
  one gets its pending steps in order, and a failing step leaves the database exactly as it was;
* a database newer than this code is refused rather than half understood.

A migration step receives the open `Connection` and may use DDL (`ALTER TABLE ...`) and data updates;
it must produce exactly the schema that `tables` then describes. Each step spells its tables out as they were
at its version, even where they read like the models of `tables` today: a step is a frozen snapshot, so that
changing a model (a new column is a new step) never changes what an old step creates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    insert,
    inspect,
    select,
    update,
)

from sreval.db.tables import Base, SchemaVersion
from sreval.errors import SrevalError

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


def _v3_studies(conn: Connection) -> None:
    """Version 3: the MOS study tables (`studies`, `study_*`), spelled out as they were at version 3.

    The stimulus kinds and the score bounds are written as literals, not taken from `sreval.vocabulary`: a step
    is a frozen snapshot of the schema it made, and must not change when the vocabulary does."""
    meta = MetaData()
    Table(
        "studies",
        meta,
        Column("id", Integer, primary_key=True),
        Column("name", String(100), nullable=False, unique=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("closed_at", DateTime(timezone=True)),
        Column("seed", BigInteger, nullable=False),
        Column("folder", String(1000), nullable=False),
        Column("settings", JSON, nullable=False),
    )
    Table(
        "study_methods",
        meta,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        Column("name", String(200), nullable=False),
        Column("position", Integer, nullable=False),
        Column("metadata", JSON, nullable=False),
        UniqueConstraint("study_id", "name", name="uq_study_methods_study_name"),
    )
    Table(
        "study_images",
        meta,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        Column("dataset", String(100), nullable=False),
        Column("name", String(255), nullable=False),
        Column("sha256", String(64), nullable=False),
        UniqueConstraint("study_id", "dataset", "name", name="uq_study_images_study_dataset_name"),
    )
    Table(
        "study_stimuli",
        meta,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        Column("public_id", String(64), nullable=False, unique=True),
        Column("method_id", Integer, ForeignKey("study_methods.id")),
        Column("image_id", Integer, ForeignKey("study_images.id"), nullable=False),
        Column("kind", String(20), nullable=False),
        Column("path", String(255), nullable=False),
        Column("expected", Integer),
        CheckConstraint(
            "kind IN ('test', 'gold_hr', 'gold_nn', 'calibration_hr', 'calibration_nn')", name="ck_study_stimuli_kind"
        ),
        CheckConstraint("expected IS NULL OR expected BETWEEN 1 AND 5", name="ck_study_stimuli_expected"),
        UniqueConstraint("study_id", "path", name="uq_study_stimuli_study_path"),
    )
    Table(
        "study_raters",
        meta,
        Column("id", Integer, primary_key=True),
        Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
        Column("number", Integer, nullable=False),
        Column("public_id", String(20), nullable=False),
        Column("token_sha256", String(64), nullable=False, unique=True),
        Column("seed", BigInteger, nullable=False),
        Column("simulated", Boolean, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("consent_at", DateTime(timezone=True)),
        Column("started_at", DateTime(timezone=True)),
        Column("finished_at", DateTime(timezone=True)),
        UniqueConstraint("study_id", "number", name="uq_study_raters_study_number"),
        UniqueConstraint("study_id", "public_id", name="uq_study_raters_study_public_id"),
    )
    Table(
        "study_schedule",
        meta,
        Column("rater_id", Integer, ForeignKey("study_raters.id", ondelete="CASCADE"), primary_key=True),
        Column("position", Integer, primary_key=True, autoincrement=False),
        Column("stimulus_id", Integer, ForeignKey("study_stimuli.id"), nullable=False),
        Column("repetition", Integer, nullable=False),
        Column("phase", String(20), nullable=False),
        CheckConstraint("repetition IN (1, 2)", name="ck_study_schedule_repetition"),
        CheckConstraint("phase IN ('calibration', 'test')", name="ck_study_schedule_phase"),
        UniqueConstraint("rater_id", "stimulus_id", "repetition", name="uq_study_schedule_rater_stimulus_rep"),
    )
    Table(
        "study_ratings",
        meta,
        Column("id", Integer, primary_key=True),
        Column("rater_id", Integer, nullable=False),
        Column("stimulus_id", Integer, nullable=False),
        Column("repetition", Integer, nullable=False),
        Column("score", Integer, nullable=False),
        Column("response_ms", Integer),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("simulated", Boolean, nullable=False),
        CheckConstraint("score BETWEEN 1 AND 5", name="ck_study_ratings_score"),
        CheckConstraint("response_ms IS NULL OR response_ms >= 0", name="ck_study_ratings_response_ms"),
        UniqueConstraint("rater_id", "stimulus_id", "repetition", name="uq_study_ratings_rater_stimulus_rep"),
        ForeignKeyConstraint(
            ["rater_id", "stimulus_id", "repetition"],
            ["study_schedule.rater_id", "study_schedule.stimulus_id", "study_schedule.repetition"],
            ondelete="CASCADE",
            name="fk_study_ratings_schedule",
        ),
        Index("ix_study_ratings_stimulus", "stimulus_id"),
    )
    meta.create_all(conn)


def _v4_problems(conn: Connection) -> None:
    """Version 4: `study_problems`, the stimuli the rater app could not show (the referenced tables are only
    named here, as stubs: they exist since version 3)."""
    meta = MetaData()
    Table("study_raters", meta, Column("id", Integer, primary_key=True))
    Table("study_stimuli", meta, Column("id", Integer, primary_key=True))
    problems = Table(
        "study_problems",
        meta,
        Column("id", Integer, primary_key=True),
        Column("rater_id", Integer, ForeignKey("study_raters.id", ondelete="CASCADE"), nullable=False),
        Column("stimulus_id", Integer, ForeignKey("study_stimuli.id"), nullable=False),
        Column("problem", String(500), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
    )
    problems.create(conn)


#: Upgrade steps in order; `MIGRATIONS[i]` takes a database from version i + 1 to version i + 2.
MIGRATIONS: list[Migration] = [_v2_metric_cache, _v3_studies, _v4_problems]


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

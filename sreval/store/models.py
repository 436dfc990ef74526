"""Tables of the results database, as SQLAlchemy 2 declarative models.

These classes always describe the *latest* schema: a fresh database is created from them directly,
an older one is brought up to them by `sreval.store.migrations`. Changing anything here therefore needs a
new migration step (tests/test_store.py keeps a snapshot of the columns to catch a forgotten one).

Methods and images are shared between runs (a method row per identity hash, an image row per
dataset + name + HR checksum), so the same SR method evaluated in a hundred runs is one row; a run points at
the ones it used through `run_methods` / `run_images`, whose `position` keeps the caller's order.
String lengths are given so the schema also works on databases that need them (MySQL); SQLite ignores them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Double, ForeignKey, Index, String, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that always comes back in UTC.

    SQLite has no time zone type (SQLAlchemy stores a naive string there) and PostgreSQL returns
    `timestamptz` in the session's zone, so both directions are normalised to UTC here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value} (sreval stores timezone-aware timestamps only)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base whose metadata holds every sreval table."""


class SchemaVersion(Base):
    """The single row saying which migration the database is at (see `sreval.store.migrations`)."""

    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)


class Run(Base):
    """One completed `sreval` invocation and everything needed to reproduce or audit it."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    command: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sreval_version: Mapped[str] = mapped_column(String(100))
    git_commit: Mapped[str | None] = mapped_column(String(64))
    protocol: Mapped[dict[str, Any]] = mapped_column(JSON)
    device: Mapped[str] = mapped_column(String(200))
    timings: Mapped[dict[str, float]] = mapped_column(JSON)
    dataset_checksums: Mapped[dict[str, str]] = mapped_column(JSON)


class Method(Base):
    """An SR method with fixed parameters, shared by every run that used the same identity hash."""

    __tablename__ = "methods"

    id: Mapped[int] = mapped_column(primary_key=True)
    identity: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # `metadata` is reserved on declarative classes, hence the attribute name `meta`.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)


class Image(Base):
    """A high-resolution test image; a new row when its content (sha256) changes."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("dataset", "name", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))


class RunMethod(Base):
    """Which methods a run evaluated, in the caller's order."""

    __tablename__ = "run_methods"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    method_id: Mapped[int] = mapped_column(ForeignKey("methods.id"), primary_key=True)
    position: Mapped[int]


class RunImage(Base):
    """Which images a run evaluated, in the caller's order."""

    __tablename__ = "run_images"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    position: Mapped[int]


class MetricValue(Base):
    """One number: metric `metric` of method on image, in one run. `id` keeps the insertion order."""

    __tablename__ = "metric_values"
    __table_args__ = (
        UniqueConstraint("run_id", "method_id", "image_id", "metric"),
        Index("ix_metric_values_method_image", "method_id", "image_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    method_id: Mapped[int] = mapped_column(ForeignKey("methods.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Double)


class CachedMetricValue(Base):
    """A per-image metric value by content, reused by any later run (schema version 2).

    `pair_key` hashes the SR pixels and the reference file; `metric_key` names the metric with every protocol
    parameter, the protocol version and, for model-based metrics, the model file's checksum. A change in any
    of them is a different key, so an entry never goes stale and is never invalidated.
    """

    __tablename__ = "metric_cache"

    pair_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    value: Mapped[float] = mapped_column(Double)

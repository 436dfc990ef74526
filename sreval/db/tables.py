"""Tables of the results database, as SQLAlchemy 2 declarative models.

These classes always describe the *latest* schema: a fresh database is created from them directly,
an older one is brought up to them by `sreval.db.migrations`. Changing anything here therefore needs a
new migration step (tests/test_store.py keeps a snapshot of the columns to catch a forgotten one).

Methods and images are shared between runs (a method row per identity hash, an image row per
dataset + name + HR checksum), so the same SR method evaluated in a hundred runs is one row; a run points at
the ones it used through `run_methods` / `run_images`, whose `position` keeps the caller's order.
String lengths are given so the schema also works on databases that need them (MySQL); SQLite ignores them.

The `studies` and `study_*` tables (schema version 3) hold MOS studies: what is shown to whom in which order,
and every score given (see `sreval.study`). They share nothing with the benchmark tables but the schema version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sreval.vocabulary import HIGHEST_SCORE, LOWEST_SCORE, STIMULUS_KINDS


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
    """The single row saying which migration the database is at (see `sreval.db.migrations`)."""

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


# --- MOS studies (schema version 3) ------------------------------------------------------------------------
# Constraint names are spelt out so that SQLite and PostgreSQL report the same ones, and the migration step
# (`migrations._v3_studies`) can create exactly these tables.

#: Phases of a rater's schedule, in the order they are presented.
SCHEDULE_PHASES = ("calibration", "test")


#: A score on the ACR scale, as SQL.
_ON_SCALE = f"BETWEEN {LOWEST_SCORE} AND {HIGHEST_SCORE}"


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Study(Base):
    """A MOS study: its stimuli live as PNG files in `folder`; `closed_at` set means no more ratings."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Seed of every random choice of the study; rater r's order comes from (seed, r) (see `study.schedule`).
    seed: Mapped[int] = mapped_column(BigInteger)
    #: Absolute path of the study folder; stimulus paths are relative to it.
    folder: Mapped[str] = mapped_column(String(1000))
    #: How the study was built (methods, datasets, retest fraction, gold and calibration sources, protocol, ...).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)


class StudyMethod(Base):
    """An SR method rated in a study, in the order given when the study was created."""

    __tablename__ = "study_methods"
    __table_args__ = (UniqueConstraint("study_id", "name", name="uq_study_methods_study_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int]
    # `metadata` is reserved on declarative classes, hence the attribute name `meta`.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)


class StudyImage(Base):
    """A source image of a study: a test image (dataset key, manifest name) or a calibration image
    (dataset `calibration`, path inside the calibration folder), with the checksum of its file."""

    __tablename__ = "study_images"
    __table_args__ = (UniqueConstraint("study_id", "dataset", "name", name="uq_study_images_study_dataset_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    dataset: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))


class Stimulus(Base):
    """One image file a rater is shown. `public_id` is the only name raters (and URLs, file names) ever see:
    random, so it says nothing about method or image. `method_id` is null for gold and calibration items."""

    __tablename__ = "study_stimuli"
    __table_args__ = (
        CheckConstraint(_one_of("kind", STIMULUS_KINDS), name="ck_study_stimuli_kind"),
        CheckConstraint(f"expected IS NULL OR expected {_ON_SCALE}", name="ck_study_stimuli_expected"),
        UniqueConstraint("study_id", "path", name="uq_study_stimuli_study_path"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    method_id: Mapped[int | None] = mapped_column(ForeignKey("study_methods.id"))
    image_id: Mapped[int] = mapped_column(ForeignKey("study_images.id"))
    kind: Mapped[str] = mapped_column(String(20))
    #: PNG file, relative to the study folder (POSIX separators).
    path: Mapped[str] = mapped_column(String(255))
    #: The score the item should get (HR 5, NN 1) for gold and calibration items; null for test items.
    expected: Mapped[int | None]


class Rater(Base):
    """One invitation. Only the SHA-256 of the link's token is stored: the database cannot recreate a link."""

    __tablename__ = "study_raters"
    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_study_raters_study_number"),
        UniqueConstraint("study_id", "public_id", name="uq_study_raters_study_public_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    #: 1, 2, ... in invitation order within the study; with the study seed it determines `seed`.
    number: Mapped[int]
    #: Shown to admins and in exports: r01, r02, ... (s01, ... for simulated raters).
    public_id: Mapped[str] = mapped_column(String(20))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: Seed of this rater's presentation order (derived from the study seed and `number`).
    seed: Mapped[int] = mapped_column(BigInteger)
    simulated: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ScheduleItem(Base):
    """Position `position` (0, 1, ...) of a rater's presentation order: which stimulus, which showing of it."""

    __tablename__ = "study_schedule"
    __table_args__ = (
        CheckConstraint("repetition IN (1, 2)", name="ck_study_schedule_repetition"),
        CheckConstraint(_one_of("phase", SCHEDULE_PHASES), name="ck_study_schedule_phase"),
        UniqueConstraint("rater_id", "stimulus_id", "repetition", name="uq_study_schedule_rater_stimulus_rep"),
    )

    rater_id: Mapped[int] = mapped_column(ForeignKey("study_raters.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("study_stimuli.id"))
    repetition: Mapped[int]
    phase: Mapped[str] = mapped_column(String(20))


class Rating(Base):
    """One score, test and calibration phases alike (calibration answers are the ratings of calibration
    stimuli). It must be for an item of the rater's schedule (composite foreign key) and exists at most once."""

    __tablename__ = "study_ratings"
    __table_args__ = (
        CheckConstraint(f"score {_ON_SCALE}", name="ck_study_ratings_score"),
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

    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[int]
    stimulus_id: Mapped[int]
    repetition: Mapped[int]
    score: Mapped[int]
    response_ms: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    simulated: Mapped[bool] = mapped_column(Boolean)


class Problem(Base):
    """A stimulus the rater app could not show to a rater (its file missing, unreadable or not a whole PNG), as
    the app reported it. The rater gets no answer buttons for it, so nothing is rated while it lasts; the admin
    sees every report in the study's status."""

    __tablename__ = "study_problems"

    id: Mapped[int] = mapped_column(primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("study_raters.id", ondelete="CASCADE"))
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("study_stimuli.id"))
    #: What went wrong, for the admin (it may name server paths: never shown to raters).
    problem: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

"""Plain-data interface to the results database: records in, records and DataFrames out.

Callers never see SQLAlchemy: they build a `RunRecord` while a run goes on and hand it to `Store.save_run`
once at the end, which writes the run and all its values in a single transaction. A crash, Ctrl-C or a
rejected value before or during that call therefore leaves nothing behind. Every database failure is
turned into a `SrevalError` naming the (password-masked) URL and the driver's reason.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Self

import pandas as pd
from sqlalchemy import Engine, create_engine, event, func, insert, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from sreval import settings
from sreval.db import migrations
from sreval.db.tables import Base, CachedMetricValue, Image, Method, MetricValue, Run, RunImage, RunMethod
from sreval.errors import SrevalError

log = logging.getLogger(__name__)

#: Seconds to wait for a PostgreSQL server before giving up (unless the URL sets `connect_timeout`).
CONNECT_TIMEOUT_S = 10
#: How long an SQLite writer waits for the write lock (study store: raters submitting at once).
SQLITE_BUSY_TIMEOUT_S = 30.0


#: RunRecord fields stored as columns of the `runs` row, under the same names.
_RUN_COLUMNS = (
    "command", "started_at", "finished_at", "sreval_version", "git_commit",
    "protocol", "device", "timings", "dataset_checksums",
)


@dataclass(frozen=True)
class MethodRecord:
    """An SR method as evaluated: `identity` is the hash of the method and its parameters."""

    name: str
    identity: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class ImageRecord:
    """A high-resolution test image, identified by dataset, file name and content checksum."""

    dataset: str
    image: str
    sha256: str


@dataclass(frozen=True)
class ValueRecord:
    """One metric value of one method on one image."""

    method: str
    dataset: str
    image: str
    metric: str
    value: float


@dataclass
class RunRecord:
    """Everything one run produced; `methods` and `images` must cover every `values` entry."""

    command: str
    started_at: datetime
    finished_at: datetime
    sreval_version: str
    git_commit: str | None
    protocol: dict[str, Any]
    device: str
    timings: dict[str, float]
    dataset_checksums: dict[str, str]
    methods: list[MethodRecord] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)
    values: list[ValueRecord] = field(default_factory=list)


#: The password of a URL's user part: everything between the user's ':' and the last '@' before the host, so
#: that a password holding '@', ':', '/' or '?' (percent-encoded or not) is hidden whole.
_URL_PASSWORD = re.compile(
    r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*:)(?P<password>.*)(?P<tail>@[^@/?#]*(?:[/?#].*)?)$", re.S
)
#: Query parameters that carry a secret (libpq's `password` and `sslpassword`, and the usual others).
_SECRET_PARAMETER = re.compile(r"(?i)([?&](?:password|passwd|pwd|pass|sslpassword|secret|token)=)[^&#]*")


def mask_url(url: str) -> str:
    """`url` with every password replaced by `***`: in the user part (whatever characters it holds) and in
    query parameters such as `?password=`. Safe to log and to show."""
    masked = _URL_PASSWORD.sub(r"\g<head>***\g<tail>", url)
    return _SECRET_PARAMETER.sub(r"\1***", masked)


def _reason(exc: BaseException) -> str:
    """The driver's own message (without SQLAlchemy's SQL echo and help link) when there is one."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return " ".join(str(cause).split())


class Store:
    """An open results database. Create it with `open_store`; `close` it (or use `with`) when done."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        self.url = url
        """The database URL with the password masked: safe to log or show."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise SrevalError(f"could not {action} in results database {self.url}: {_reason(exc)}") from exc

    def save_run(self, run: RunRecord) -> int:
        """Store `run` with all its methods, images and values in one transaction; return the run id."""
        _check_run(run)
        with self._errors("save the run (nothing was stored)"), Session(self._engine) as session, session.begin():
            run_id = _insert_run(session, run)
        log.info("saved run %d (%d values) to %s", run_id, len(run.values), self.url)
        return run_id

    def list_runs(self) -> pd.DataFrame:
        """One row per stored run, oldest first, with the number of metric values it holds."""
        n_values = (
            select(MetricValue.run_id, func.count().label("n_values")).group_by(MetricValue.run_id).subquery()
        )
        query = (
            select(
                Run.id,
                Run.command,
                Run.started_at,
                Run.finished_at,
                Run.sreval_version,
                Run.git_commit,
                Run.device,
                func.coalesce(n_values.c.n_values, 0).label("n_values"),
            )
            .outerjoin(n_values, n_values.c.run_id == Run.id)
            .order_by(Run.id)
        )
        with self._errors("list runs"), self._engine.connect() as conn:
            rows = [tuple(row) for row in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=[column.name for column in query.selected_columns])
        return frame.astype({"id": "int64", "n_values": "int64"})

    def run_values(self, run_id: int) -> pd.DataFrame:
        """Values of run `run_id` in the order they were saved: method, dataset, image, metric, value."""
        with self._errors(f"read run {run_id}"), Session(self._engine) as session:
            self._load_run(session, run_id)
            rows = _value_rows(session, run_id)
        frame = pd.DataFrame(rows, columns=["method", "dataset", "image", "metric", "value"])
        return frame.astype({"value": "float64"})

    def get_run(self, run_id: int) -> RunRecord:
        """Run `run_id` as it was saved (JSON fields come back as JSON, e.g. tuples as lists)."""
        with self._errors(f"read run {run_id}"), Session(self._engine) as session:
            row = self._load_run(session, run_id)
            methods = session.scalars(
                select(Method).join(RunMethod).where(RunMethod.run_id == run_id).order_by(RunMethod.position)
            )
            images = session.scalars(
                select(Image).join(RunImage).where(RunImage.run_id == run_id).order_by(RunImage.position)
            )
            return RunRecord(
                **{name: getattr(row, name) for name in _RUN_COLUMNS},
                methods=[MethodRecord(m.name, m.identity, m.meta) for m in methods],
                images=[ImageRecord(i.dataset, i.name, i.sha256) for i in images],
                values=[ValueRecord(*r) for r in _value_rows(session, run_id)],
            )

    def cached_metrics(self, pair_key: str) -> dict[str, float]:
        """Metric values already computed for this output/reference pair, by metric key."""
        with self._errors("read the metric cache"), self._engine.connect() as conn:
            rows = conn.execute(
                select(CachedMetricValue.metric_key, CachedMetricValue.value).where(
                    CachedMetricValue.pair_key == pair_key
                )
            )
            return {key: float(value) for key, value in rows}

    def cache_metrics(self, pair_key: str, values: dict[str, float]) -> None:
        """Remember values for a pair (keys already present are left as they are: same key, same number)."""
        if not values:
            return
        with self._errors("write the metric cache"), Session(self._engine) as session, session.begin():
            present = set(session.scalars(
                select(CachedMetricValue.metric_key).where(CachedMetricValue.pair_key == pair_key)
            ))
            rows = [{"pair_key": pair_key, "metric_key": k, "value": v} for k, v in values.items() if k not in present]
            if rows:
                session.execute(insert(CachedMetricValue), rows)

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def _load_run(self, session: Session, run_id: int) -> Run:
        row = session.get(Run, run_id)
        if row is None:
            raise SrevalError(f"no run with id {run_id} in results database {self.url}")
        return row


def open_store(url: str | None = None) -> Store:
    """Open (creating or migrating as needed) the results database at `url`, default `settings.db_url()`."""
    resolved = settings.db_url(url)
    masked = mask_url(resolved)
    engine = create_store_engine(resolved, masked)
    try:
        with engine.begin() as conn:
            version = migrations.upgrade(conn)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise SrevalError(f"cannot open results database {masked}: {_reason(exc)}") from exc
    except SrevalError as exc:
        engine.dispose()
        raise SrevalError(f"results database {masked}: {exc}") from exc
    log.debug("opened results database %s at schema version %d", masked, version)
    return Store(engine, masked)


def create_store_engine(url: str, masked: str, what: str = "results", *, concurrent_writers: bool = False) -> Engine:
    """An engine for `url`; SQLite gets its folder created and transactional DDL, PostgreSQL a connect timeout
    and connections checked before use.

    `concurrent_writers` (the study store: many raters at once) adds what SQLite needs for that: a database file
    (not memory), WAL (readers never wait for the writer), a busy timeout (writers queue instead of failing) and
    BEGIN IMMEDIATE for transactions run with the execution option `sreval_write=True` (a deferred transaction
    that read first could not take the write lock after another writer committed, and would fail at once).
    """
    try:
        parsed = make_url(url)
        connect_args: dict[str, Any] = {}
        options: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if concurrent_writers and (database in ("", ":memory:") or "mode=memory" in str(parsed)):
                raise SrevalError(f"a {what} database must be a file or a server, not in memory ({masked})")
            _create_sqlite_folder(parsed)
            if concurrent_writers:
                connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
        if parsed.get_backend_name() == "postgresql":
            parsed = _installed_pg_driver(parsed)
            if "connect_timeout" not in parsed.query:
                connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
            # A pooled connection the server has ended (restart, idle timeout, failover) is replaced when it is
            # taken from the pool instead of failing the request that took it: one round trip per checkout.
            options["pool_pre_ping"] = True
        engine = create_engine(parsed, connect_args=connect_args, **options)
    except (SQLAlchemyError, ValueError) as exc:  # ValueError: e.g. a port that is not a number
        raise SrevalError(f"bad {what} database URL {masked}: {_reason(exc)}") from exc
    except ImportError as exc:
        raise SrevalError(f"cannot open {what} database {masked}: its driver is not installed ({exc})") from exc
    except OSError as exc:
        raise SrevalError(f"cannot create the folder of {what} database {masked}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        _make_sqlite_transactional(engine, wal=concurrent_writers)
    return engine


def _installed_pg_driver(url: URL) -> URL:
    """Plain `postgresql://` means psycopg 3 to SQLAlchemy 2.1, but `sreval[postgres]` installs psycopg2:
    use that when psycopg 3 is missing, instead of failing on the most natural way to write the URL."""
    if url.drivername == "postgresql" and find_spec("psycopg") is None and find_spec("psycopg2") is not None:
        return url.set(drivername="postgresql+psycopg2")
    return url


def _create_sqlite_folder(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _make_sqlite_transactional(engine: Engine, *, wal: bool = False) -> None:
    """Let SQLAlchemy emit BEGIN itself: Python's sqlite3 would otherwise autocommit DDL (breaking atomic
    migrations), and switch on foreign keys, which SQLite leaves off by default (see `create_store_engine`)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        if wal:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        writes = wal and conn.get_execution_options().get("sreval_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def _check_json(what: str, obj: object) -> None:
    try:
        json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SrevalError(f"{what} cannot be stored as JSON: {exc}") from exc


def _check_run(run: RunRecord) -> None:
    """Reject a run the database would store wrongly or not at all, before anything is written."""
    for what, stamp in (("started_at", run.started_at), ("finished_at", run.finished_at)):
        if stamp.utcoffset() is None:
            raise SrevalError(f"run {what} {stamp} has no time zone; use datetime.now(timezone.utc)")
    _check_json("run protocol", run.protocol)
    _check_json("run timings", run.timings)
    _check_json("run dataset checksums", run.dataset_checksums)
    for m in run.methods:
        _check_json(f"metadata of method {m.name!r}", m.metadata)
    _check_unique("method name", [m.name for m in run.methods])
    _check_unique("method identity", [m.identity for m in run.methods])
    _check_unique("image (dataset, image)", [(i.dataset, i.image) for i in run.images])
    _check_unique("a value for (method, dataset, image, metric)", [astuple(v)[:4] for v in run.values])
    methods = {m.name for m in run.methods}
    images = {(i.dataset, i.image) for i in run.images}
    for v in run.values:
        where = f"method {v.method!r}, dataset {v.dataset!r}, image {v.image!r}, metric {v.metric!r}"
        if v.method not in methods:
            raise SrevalError(f"value for {where}: the method is not among the run's methods")
        if (v.dataset, v.image) not in images:
            raise SrevalError(f"value for {where}: the image is not among the run's images")
        if not isinstance(v.value, numbers.Real) or isinstance(v.value, bool):
            raise SrevalError(f"value for {where} is {v.value!r}, not a number")
        if math.isnan(v.value):
            raise SrevalError(f"value for {where} is NaN; refusing to store it")


def _check_unique(what: str, keys: Sequence[object]) -> None:
    seen: set[object] = set()
    for key in keys:
        if key in seen:
            raise SrevalError(f"run has {what} {key!r} twice")
        seen.add(key)


def _insert_many(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """One executemany-style INSERT for all `rows` (no ORM object, no flush per row)."""
    if rows:
        session.execute(insert(model), rows)


def _insert_run(session: Session, run: RunRecord) -> int:
    """Write `run` inside the caller's transaction: one INSERT for the run, then one per table for the rest."""
    method_ids = _method_ids(session, run.methods)
    image_ids = _image_ids(session, run.images)
    row = Run(**{name: getattr(run, name) for name in _RUN_COLUMNS})
    session.add(row)
    session.flush()
    run_methods = [
        {"run_id": row.id, "method_id": method_ids[m.name], "position": i} for i, m in enumerate(run.methods)
    ]
    run_images = [
        {"run_id": row.id, "image_id": image_ids[im.dataset, im.image], "position": i}
        for i, im in enumerate(run.images)
    ]
    values = [
        {
            "run_id": row.id,
            "method_id": method_ids[v.method],
            "image_id": image_ids[v.dataset, v.image],
            "metric": v.metric,
            "value": float(v.value),
        }
        for v in run.values
    ]
    _insert_many(session, RunMethod, run_methods)
    _insert_many(session, RunImage, run_images)
    _insert_many(session, MetricValue, values)
    return row.id


def _method_ids(session: Session, methods: list[MethodRecord]) -> dict[str, int]:
    """Row id per method name, reusing the stored row of each known identity and adding the others."""
    wanted = {m.identity: m for m in methods}
    if not wanted:
        return {}
    stored = {row.identity: row for row in session.scalars(select(Method).where(Method.identity.in_(wanted)))}
    for identity, row in stored.items():
        method = wanted[identity]
        if (row.name, row.meta) != (method.name, json.loads(json.dumps(method.metadata))):
            raise SrevalError(
                f"method identity {identity!r} is stored as {row.name!r} with metadata {row.meta}, but this run "
                f"calls it {method.name!r} with metadata {method.metadata}; one identity must mean one method"
            )
    new = [m for m in methods if m.identity not in stored]
    _insert_many(session, Method, [{"identity": m.identity, "name": m.name, "meta": m.metadata} for m in new])
    ids = dict(session.execute(select(Method.identity, Method.id).where(Method.identity.in_(wanted))).all())
    return {m.name: ids[m.identity] for m in methods}


def _image_ids(session: Session, images: list[ImageRecord]) -> dict[tuple[str, str], int]:
    """Row id per (dataset, image), reusing stored rows with the same checksum and adding the others."""
    if not images:
        return {}
    query = select(Image.dataset, Image.name, Image.sha256, Image.id).where(
        Image.dataset.in_({i.dataset for i in images})
    )

    def stored() -> dict[tuple[str, str, str], int]:
        return {(d, n, s): i for d, n, s, i in session.execute(query)}

    ids = stored()
    new = [i for i in images if (i.dataset, i.image, i.sha256) not in ids]
    if new:
        _insert_many(session, Image, [{"dataset": i.dataset, "name": i.image, "sha256": i.sha256} for i in new])
        ids = stored()
    return {(i.dataset, i.image): ids[i.dataset, i.image, i.sha256] for i in images}


def _value_rows(session: Session, run_id: int) -> list[tuple[str, str, str, str, float]]:
    query = (
        select(Method.name, Image.dataset, Image.name, MetricValue.metric, MetricValue.value)
        .join(Method, Method.id == MetricValue.method_id)
        .join(Image, Image.id == MetricValue.image_id)
        .where(MetricValue.run_id == run_id)
        .order_by(MetricValue.id)
    )
    return [(m, d, i, k, v) for m, d, i, k, v in session.execute(query)]

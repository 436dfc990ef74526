"""Plain-data interface to the results database: records in, records and DataFrames out.

Callers never see SQLAlchemy: they build a `RunRecord` while a run goes on and hand it to `Store.save_run`
once at the end, which writes the run and all its values in a single transaction. A crash, Ctrl-C or a
rejected value before or during that call therefore leaves nothing behind. Every database failure is
turned into a `SrevalError` naming the (password-masked) URL and the driver's reason.

Several processes may write one database at once (the ranks of a sharded run, independent runs): a row another
writer added in the meantime (a cached metric value, a method, an image) is taken as it is, never a failure or a
second copy, and SQLite writers queue for the write lock instead of failing.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import astuple, dataclass, field
from datetime import datetime
from typing import Any, Self

import pandas as pd
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from sreval.db.engine import database_errors, open_engine
from sreval.db.tables import Base, CachedMetricValue, Image, Method, MetricValue, Run, RunImage, RunMethod
from sreval.errors import ParameterError, SrevalError

log = logging.getLogger(__name__)

#: RunRecord fields stored as columns of the `runs` row, under the same names.
_RUN_COLUMNS = (
    "command",
    "started_at",
    "finished_at",
    "sreval_version",
    "git_commit",
    "protocol",
    "device",
    "timings",
    "dataset_checksums",
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


class Store:
    """An open results database. Create it with `open_store`; `close` it (or use `with`) when done."""

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        # Write transactions take SQLite's write lock when they begin: one that read first could not upgrade its
        # lock while another writer waits, and would fail at once instead of queueing.
        self._writer = engine.execution_options(sreval_write=True)
        self.url = url
        """The database URL with the password masked: safe to log or show."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return database_errors("results", self.url, action)

    def save_run(self, run: RunRecord) -> int:
        """Store `run` with all its methods, images and values in one transaction; return the run id."""
        _check_run(run)
        with self._errors("save the run (nothing was stored)"), Session(self._writer) as session, session.begin():
            run_id = _insert_run(session, run)
        log.info("saved run %d (%d values) to %s", run_id, len(run.values), self.url)
        return run_id

    def list_runs(self) -> pd.DataFrame:
        """One row per stored run, oldest first, with the number of metric values it holds."""
        n_values = select(MetricValue.run_id, func.count().label("n_values")).group_by(MetricValue.run_id).subquery()
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

    def latest_values(self, runs: Sequence[int] = ()) -> tuple[pd.DataFrame, list[int]]:
        """Metric values of `runs` (every stored run when empty) and the run ids they come from: one row per
        method, dataset, image and metric (columns of `run_values`), the value of the latest of those runs."""
        ids = [int(i) for i in runs] if runs else [int(i) for i in self.list_runs()["id"]]
        frames = [self.run_values(run_id) for run_id in ids]
        if not frames:
            return pd.DataFrame(columns=["method", "dataset", "image", "metric", "value"]), ids
        values = pd.concat(frames, ignore_index=True)
        values = values.drop_duplicates(["method", "dataset", "image", "metric"], keep="last")
        return values.reset_index(drop=True), ids

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

    def cache_metrics(self, entries: Mapping[str, Mapping[str, float]]) -> None:
        """Remember values by pair key, all in one transaction (keys already present, written by this or another
        process, are left as they are: same key, same number)."""
        wanted = {pair: values for pair, values in entries.items() if values}
        if not wanted:
            return
        with self._errors("write the metric cache"), Session(self._writer) as session, session.begin():
            query = select(CachedMetricValue.pair_key, CachedMetricValue.metric_key).where(
                CachedMetricValue.pair_key.in_(wanted)
            )
            present = {(pair, key) for pair, key in session.execute(query)}
            rows = [
                {"pair_key": pair, "metric_key": key, "value": value}
                for pair, values in wanted.items()
                for key, value in values.items()
                if (pair, key) not in present
            ]
            _insert_new(session, CachedMetricValue, rows)

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def after_fork(self) -> None:
        """In a forked child: open connections of its own from now on, leaving the inherited ones (which the
        parent goes on using) untouched."""
        self._engine.dispose(close=False)

    def _load_run(self, session: Session, run_id: int) -> Run:
        row = session.get(Run, run_id)
        if row is None:
            raise ParameterError("run_id", f"no run with id {run_id} in results database {self.url}")
        return row


def open_store(url: str | None = None) -> Store:
    """Open (creating or migrating as needed) the results database at `url`, default `settings.db_url()`: a file
    or a server, since several processes may write it at once."""
    engine, masked = open_engine(url, "results", concurrent_writers=True)
    return Store(engine, masked)


def _check_json(what: str, obj: object) -> None:
    try:
        json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ParameterError("run", f"{what} cannot be stored as JSON: {exc}") from exc


def _check_run(run: RunRecord) -> None:
    """Reject a run the database would store wrongly or not at all, before anything is written."""
    for what, stamp in (("started_at", run.started_at), ("finished_at", run.finished_at)):
        if stamp.utcoffset() is None:
            raise ParameterError("run", f"run {what} {stamp} has no time zone; use datetime.now(timezone.utc)")
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
            raise ParameterError("run", f"value for {where}: the method is not among the run's methods")
        if (v.dataset, v.image) not in images:
            raise ParameterError("run", f"value for {where}: the image is not among the run's images")
        if not isinstance(v.value, numbers.Real) or isinstance(v.value, bool):
            raise ParameterError("run", f"value for {where} is {v.value!r}, not a number")
        if math.isnan(v.value):
            raise ParameterError("run", f"value for {where} is NaN; refusing to store it")


def _check_unique(what: str, keys: Sequence[object]) -> None:
    seen: set[object] = set()
    for key in keys:
        if key in seen:
            raise ParameterError("run", f"run has {what} {key!r} twice")
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


def _insert_new(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """`_insert_many` for rows that another process may have added since the caller looked (same unique key,
    same content): those are left as they are. On PostgreSQL the INSERT waits for the other transaction."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(model).on_conflict_do_nothing(), rows)
    elif dialect == "sqlite":
        session.execute(sqlite.insert(model).on_conflict_do_nothing(), rows)
    else:
        _insert_many(session, model, rows)


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
    _insert_new(session, Method, [{"identity": m.identity, "name": m.name, "meta": m.metadata} for m in new])
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
        _insert_new(session, Image, [{"dataset": i.dataset, "name": i.image, "sha256": i.sha256} for i in new])
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

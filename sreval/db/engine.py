"""Opening the sreval database: one engine per URL, set up for its backend, migrated to the latest schema.

Both stores (`sreval.results`, `sreval.study`) open their database here, so that URL masking, backend setup,
migration on open and the wording of database errors are the same for both: every failure becomes a
`SrevalError` naming the (password-masked) URL and the driver's reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from sreval import settings
from sreval.db import migrations
from sreval.errors import ParameterError, SrevalError

log = logging.getLogger(__name__)

#: Seconds to wait for a PostgreSQL server before giving up (unless the URL sets `connect_timeout`).
CONNECT_TIMEOUT_S = 10
#: How long an SQLite writer waits for the write lock (study store: raters submitting at once).
SQLITE_BUSY_TIMEOUT_S = 30.0

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


def reason(exc: BaseException) -> str:
    """The driver's own message (without SQLAlchemy's SQL echo and help link) when there is one."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return " ".join(str(cause).split())


@contextmanager
def database_errors(what: str, url: str, action: str) -> Iterator[None]:
    """Turn a database failure inside the block into `SrevalError`: could not `action` in the `what` database
    at `url` (masked), and the driver's reason."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise SrevalError(f"could not {action} in {what} database {url}: {reason(exc)}") from exc


def open_engine(url: str | None, what: str, *, concurrent_writers: bool = False) -> tuple[Engine, str]:
    """An engine for `url` (default `settings.db_url()`: `--db`, then SREVAL_DB) whose database is created or
    migrated to the latest schema, and the URL masked for messages. `what` names the store in messages
    (`results`, `study`); for `concurrent_writers` see `create_database_engine`."""
    resolved = settings.db_url(url)
    masked = mask_url(resolved)
    engine = create_database_engine(resolved, masked, what, concurrent_writers=concurrent_writers)
    try:
        with engine.begin() as conn:
            version = migrations.upgrade(conn)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise SrevalError(f"cannot open {what} database {masked}: {reason(exc)}") from exc
    except SrevalError as exc:
        engine.dispose()
        raise SrevalError(f"{what} database {masked}: {exc}") from exc
    log.debug("opened %s database %s at schema version %d", what, masked, version)
    return engine, masked


def create_database_engine(url: str, masked: str, what: str, *, concurrent_writers: bool = False) -> Engine:
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
                raise ParameterError("url", f"a {what} database must be a file or a server, not in memory ({masked})")
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
        raise ParameterError("url", f"bad {what} database URL {masked}: {reason(exc)}") from exc
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
    migrations), and switch on foreign keys, which SQLite leaves off by default (see `create_database_engine`)."""

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

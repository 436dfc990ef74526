"""The open study database both sides of the store work on: its engine, the queue of this process's writers,
and the wording of database failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Self

from sqlalchemy import Connection, Engine

from sreval.db.engine import database_errors


def utc_now() -> datetime:
    """The time stored with a change (UTC)."""
    return datetime.now(UTC)


class StudyDatabase:
    """An open study database (see `store.open_study_store`); `close` it (or use `with`) when done.

    Thread-safe: the simulation and the app call it from many threads at once.
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self._engine = engine
        # Transactions that write: on SQLite they begin with BEGIN IMMEDIATE (see `db.engine`).
        self._write_options = engine.execution_options(sreval_write=True)
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in growing steps (up to
        # 100 ms) before it tries again. The threads of this process (the sessions of one app server) queue on a
        # lock of their own instead, and take the database's lock as soon as it is free.
        self._write_queue = threading.Lock() if engine.dialect.name == "sqlite" else None
        self.url = url
        """The database URL with the password masked: safe to log or show."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction (on SQLite: BEGIN IMMEDIATE, after the other writers of this process)."""
        with self._write_queue or nullcontext(), self._write_options.begin() as conn:
            yield conn

    def _errors(self, action: str) -> AbstractContextManager[None]:
        return database_errors("study", self.url, action)

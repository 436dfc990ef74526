"""Reading a test database directly (behind the stores' backs): one engine per call, always disposed, so that a
test's own SQLite file is never held open by a helper."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text


def query_rows(url: str, *queries: str) -> list[list[tuple[Any, ...]]]:
    """The rows of each of `queries`, on one connection."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [[tuple(r) for r in conn.execute(text(query))] for query in queries]
    finally:
        engine.dispose()


def execute(url: str, *statements: str, **params: Any) -> None:
    """Run `statements` (with the bound `params`) in one transaction, as another program changing the database
    would."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), params)
    finally:
        engine.dispose()


def query_scalar(url: str, query: str) -> Any:
    """The single value that `query` returns."""
    ((value,),) = query_rows(url, query)[0]
    return value


def copy_database(template: Path, target: Path) -> str:
    """A private copy of a template's SQLite database (the stimulus files stay shared: they are only read)."""
    for suffix in ("", "-wal"):
        if (template / f"study.sqlite{suffix}").exists():
            shutil.copy(template / f"study.sqlite{suffix}", target / f"study.sqlite{suffix}")
    return f"sqlite:///{target / 'study.sqlite'}"


def count_rows(url: str, tables: list[str]) -> dict[str, int]:
    """Rows per table of `tables`."""
    found = query_rows(url, *(f"SELECT COUNT(*) FROM {t}" for t in tables))
    return {t: int(rows[0][0]) for t, rows in zip(tables, found, strict=True)}

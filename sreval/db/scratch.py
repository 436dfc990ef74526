"""A throw-away PostgreSQL database: created empty on a server, dropped when done.

The test suite gives each PostgreSQL test its own (tests stay independent) and the performance scripts measure
on one, so that neither touches a database that holds anything else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new empty database named `prefix` plus a random suffix, on the server of `server_url`
    (which must allow CREATE DATABASE); it is dropped afterwards, also when the body fails, even with
    connections still open."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.dispose()

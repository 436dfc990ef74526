"""Opening the sreval database: the default URL, bad URLs, unreachable servers, password masking."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from sreval.db import engine
from sreval.db.engine import mask_url
from sreval.errors import SrevalError
from sreval.results import open_store

# --- opening ----------------------------------------------------------------------------------------------


def test_default_url_comes_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deep" / "er" / "results.sqlite"
    monkeypatch.setenv("SREVAL_DB", f"sqlite:///{path}")
    open_store().close()
    assert path.is_file()


@pytest.mark.parametrize(
    ("bad_url", "message"),
    [
        ("not a url", "bad results database URL not a url"),
        ("nosuchdb://user:hunter2@host/db", r"bad results database URL nosuchdb://user:\*\*\*@host/db"),
        ("postgresql://user:hunter2@host:port/db", r"bad results database URL postgresql://user:\*\*\*@host:port"),
    ],
)
def test_bad_url(bad_url: str, message: str) -> None:
    with pytest.raises(SrevalError, match=message) as caught:
        open_store(bad_url)
    assert "hunter2" not in str(caught.value)


def test_sqlite_folder_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(SrevalError, match="cannot create the folder"):
        open_store(f"sqlite:///{tmp_path}/a-file/results.sqlite")


def test_refused_postgres_connection_names_the_url_not_the_password() -> None:
    """Also checks that a plain postgresql:// URL works with psycopg2, the driver `sreval[postgres]` installs."""
    with pytest.raises(SrevalError) as caught:
        open_store("postgresql://sreval:hunter2@127.0.0.1:1/results")
    message = str(caught.value)
    assert "postgresql://sreval:***@127.0.0.1:1/results" in message
    assert "hunter2" not in message
    assert "refused" in message.lower()


def test_silent_postgres_server_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts TCP but never answers must not hang `open_store`: connect_timeout applies."""
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.perf_counter()
        with pytest.raises(SrevalError, match=f"127.0.0.1:{port}.*timeout"):
            open_store(f"postgresql+psycopg2://sreval@127.0.0.1:{port}/results")
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://mos:hunter2@db.example.org/mos", "postgresql://mos:***@db.example.org/mos"),
        ("postgresql+psycopg2://mos:hunter2@db.example.org:5433/mos", "postgresql+psycopg2://mos:***@db.example.org:5433/mos"),
        ("postgresql://mos:hun@ter2@db.example.org/mos", "postgresql://mos:***@db.example.org/mos"),
        ("postgresql://mos:hun:ter@2@db.example.org/mos", "postgresql://mos:***@db.example.org/mos"),
        ("postgresql://mos:hun%40ter%3A2@db.example.org/mos", "postgresql://mos:***@db.example.org/mos"),
        ("postgresql://mos:hun/ter?2@db.example.org/mos", "postgresql://mos:***@db.example.org/mos"),
        ("postgresql://:hunter2@db.example.org/mos", "postgresql://:***@db.example.org/mos"),
        ("postgresql://db.example.org/mos?user=mos&password=hunter2", "postgresql://db.example.org/mos?user=mos&password=***"),
        ("postgresql://db.example.org/mos?PASSWORD=hunter2&sslmode=require", "postgresql://db.example.org/mos?PASSWORD=***&sslmode=require"),
        ("postgresql://mos@db.example.org/mos?sslpassword=hunter2", "postgresql://mos@db.example.org/mos?sslpassword=***"),
        ("sqlite:////home/a@b/results.sqlite", "sqlite:////home/a@b/results.sqlite"),
        ("sqlite:///results.sqlite", "sqlite:///results.sqlite"),
        ("postgresql://mos@db.example.org/mos", "postgresql://mos@db.example.org/mos"),
    ],
)  # fmt: skip
def test_mask_url_hides_the_password_in_every_form(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "hunter2" not in mask_url(url) and "ter2" not in mask_url(url)

"""The study store under pressure, on SQLite and on the real PostgreSQL: closing a study is atomic with the
submits running at that moment, a dropped database connection fails no request, and a submit costs a fixed,
small number of statements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from sreval.study import Refusal, RequestRefused, StudyStore, open_study_store
from sreval.study.simulate import synthetic_study

STUDY = "load"
ITEMS = 12  # test items per rater; with 2 gold and 4 calibration items each rater answers 18
PER_RATER = ITEMS + 6


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.sqlite'}"
    return str(request.getfixturevalue("pg_database_url"))


def new_study(store: StudyStore, folder: Path, name: str = STUDY) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    synthetic_study(store, name, folder, ITEMS)


def consented(store: StudyStore, study: str, n: int) -> list[str]:
    tokens = [token for _, token in store.invite(study, n)]
    for token in tokens:
        store.give_consent(token)
    return tokens


def close_while_rating(store: StudyStore, study: str, raters: int) -> tuple[int, datetime, pd.DataFrame]:
    """`raters` raters answer as fast as they can; the study is closed when a quarter of the answers are in.
    Returns the answers acknowledged, `closed_at` and the export taken as soon as `close_study` returned."""
    tokens = consented(store, study, raters)
    acknowledged = [0] * raters
    unexpected: list[BaseException] = []
    go = threading.Event()

    def rate(index: int) -> None:
        go.wait()
        try:
            while (item := store.next_item(tokens[index])) is not None:
                store.submit(tokens[index], item.stimulus, item.repetition, 1 + index % 5, 100)
                acknowledged[index] += 1
        except RequestRefused as exc:
            if exc.reason != Refusal.STUDY_CLOSED:
                unexpected.append(exc)
        except BaseException as exc:
            unexpected.append(exc)

    threads = [threading.Thread(target=rate, args=(i,)) for i in range(raters)]
    for thread in threads:
        thread.start()
    go.set()
    while len(store.export(study)) < raters * PER_RATER // 4:
        time.sleep(0.002)
    closed_at = store.close_study(study)
    at_close = store.export(study)
    for thread in threads:
        thread.join(60)
    assert not unexpected, unexpected[:3]
    return sum(acknowledged), closed_at, at_close


def test_no_rating_is_stored_or_acknowledged_after_close_returns(url: str, tmp_path: Path) -> None:
    """20 times over: whatever was acknowledged is stored, nothing was created after `closed_at`, and the
    export taken when `close_study` returned is final (equal to one taken after every submit has ended)."""
    raters = 8
    with open_study_store(url) as store:
        for round_ in range(20):
            study = f"close{round_}"
            new_study(store, tmp_path / study, study)
            acknowledged, closed_at, at_close = close_while_rating(store, study, raters)
            final = store.export(study)
            pd.testing.assert_frame_equal(at_close, final)
            assert len(final) == acknowledged < raters * PER_RATER, f"round {round_}"
            assert (final["created_at"] <= pd.Timestamp(closed_at)).all(), f"round {round_}"


@pytest.mark.postgres
def test_a_dropped_postgres_connection_fails_no_request(pg_database_url: str, tmp_path: Path) -> None:
    """The server ends every connection of the app's pool (a restart, an idle timeout, a failover) between two
    submits: the next calls still succeed."""
    with open_study_store(pg_database_url) as store:
        new_study(store, tmp_path / "study")
        (token,) = consented(store, STUDY, 1)
        database = make_url(pg_database_url).database
        admin = create_engine(pg_database_url, isolation_level="AUTOCOMMIT")
        try:
            for _ in range(3):
                item = store.next_item(token)
                assert item is not None
                with admin.connect() as conn:
                    ended = conn.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = :db AND pid <> pg_backend_pid()"
                        ),
                        {"db": database},
                    ).scalar_one()
                assert ended >= 1  # the store's pooled connection
                assert store.submit(token, item.stimulus, item.repetition, 3, 100).status == "recorded"
                assert store.rater_for_token(token) is not None
        finally:
            admin.dispose()
        assert len(store.export(STUDY)) == 3


@pytest.fixture
def counted(url: str, tmp_path: Path) -> Iterator[tuple[StudyStore, list[str]]]:
    """A store whose engine records every SQL statement it sends (transaction control left out)."""
    with open_study_store(url) as store:
        new_study(store, tmp_path / "study")
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
                statements.append(statement)

        event.listen(store._engine, "before_cursor_execute", record)
        yield store, statements


def test_a_submit_is_one_read_and_one_write(counted: tuple[StudyStore, list[str]]) -> None:
    """The submit path is what every rater waits for and what holds SQLite's write lock: one statement that
    reads everything it checks and one INSERT; the rater's start and end times add one UPDATE on their items."""
    store, statements = counted
    (token,) = consented(store, STUDY, 1)
    per_submit = []
    while (item := store.next_item(token)) is not None:
        statements.clear()
        result = store.submit(token, item.stimulus, item.repetition, 4, 100)
        per_submit.append(len(statements))
        assert result.status == "recorded"
    assert len(per_submit) == PER_RATER
    assert per_submit[0] == per_submit[-1] == 3  # started_at, finished_at
    assert set(per_submit[1:-1]) == {2}, per_submit
    statements.clear()
    with pytest.raises(RequestRefused):  # a refusal writes nothing
        store.submit(token, "forgedstimulus00", 1, 4, 100)
    assert all(s.lstrip().upper().startswith("SELECT") for s in statements)

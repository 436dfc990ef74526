"""Several processes writing the results store at once (ranks of one torchrun run, or independent `sreval` runs on
one database): the metric cache and saved runs stay correct, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from db_helpers import query_rows
from sqlalchemy import create_engine

from sreval.results import ImageRecord, MethodRecord, RunRecord, ValueRecord, open_store
from sreval.results.store import Store

WRITERS = 2
PAIRS = 60

#: Waits for the start file, so that both writers begin together, then caches PAIRS pairs (the same pairs and
#: values in every writer: the same key always means the same number) and saves one run.
WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from pathlib import Path
    from sreval.results import ImageRecord, MethodRecord, RunRecord, ValueRecord, open_store

    url, go, pairs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    store = open_store(url)
    while not go.exists():
        time.sleep(0.002)
    for i in range(pairs):
        key = f"pair-{i:04d}"
        store.cached_metrics(key)
        store.cache_metrics({key: {"psnr-key": 20.0 + i, "ssim-key": i / 1000}})
    now = datetime.now(UTC)
    store.save_run(RunRecord(
        "run-benchmarks", now, now, "0", None, {}, "cpu", {}, {},
        methods=[MethodRecord("new-method", "identity-new", {})],
        images=[ImageRecord("set5", "new.png", "0" * 64)],
        values=[ValueRecord("new-method", "set5", "new.png", "psnr", 1.5)],
    ))
    store.close()
    """
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.sqlite'}"
    return str(request.getfixturevalue("pg_database_url"))


def test_writers_caching_the_same_pairs_at_once_neither_fail_nor_duplicate(url: str, tmp_path: Path) -> None:
    open_store(url).close()  # created and migrated once, as the first process of a run does
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(go), str(PAIRS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(WRITERS)
    ]
    time.sleep(1.0)  # both have imported sreval and opened the store
    go.touch()
    results = [(w.wait(timeout=120), w.stderr.read().decode() if w.stderr else "") for w in writers]
    for code, err in results:
        assert code == 0, err
    cached, runs, methods, images = query_rows(
        url,
        "SELECT pair_key, metric_key, COUNT(*) FROM metric_cache GROUP BY pair_key, metric_key",
        "SELECT COUNT(*) FROM runs",
        "SELECT COUNT(*) FROM methods WHERE identity = 'identity-new'",
        "SELECT COUNT(*) FROM images WHERE name = 'new.png'",
    )
    assert len(cached) == 2 * PAIRS and {row[2] for row in cached} == {1}
    assert runs == [(WRITERS,)] and methods == [(1,)] and images == [(1,)]
    with open_store(url) as store:
        assert store.cached_metrics("pair-0007") == {"psnr-key": 27.0, "ssim-key": 0.007}


@contextmanager
def other_writer(url: str, *statements: str) -> Iterator[None]:
    """Another process's transaction that has written `statements` and not yet committed: it holds SQLite's write
    lock, or PostgreSQL's lock on the rows it added, until the block ends and it commits."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")  # BEGIN and COMMIT sent by hand, when wanted
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            for statement in statements:
                conn.exec_driver_sql(statement)
            yield
            conn.exec_driver_sql("COMMIT")
    finally:
        engine.dispose()


def while_another_writer_commits(url: str, write: Callable[[Store], None], *statements: str) -> None:
    """`write` on the store, started while another transaction holds `statements` uncommitted; that one commits
    while `write` waits for it. `write` must then succeed."""
    open_store(url).close()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            with open_store(url) as store:
                write(store)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    with other_writer(url, *statements):
        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(0.5)  # the store has read what was committed and now waits for the other writer's lock
        assert thread.is_alive()
    thread.join(timeout=30)
    assert not thread.is_alive() and failures == []


def test_a_pair_another_writer_is_caching_is_waited_for_and_kept(url: str) -> None:
    while_another_writer_commits(
        url,
        lambda store: store.cache_metrics({"pair": {"psnr-key": 31.5, "ssim-key": 0.875}}),
        "INSERT INTO metric_cache (pair_key, metric_key, value) VALUES ('pair', 'psnr-key', 31.5)",
    )
    rows = query_rows(url, "SELECT pair_key, metric_key, value FROM metric_cache ORDER BY metric_key")[0]
    assert rows == [("pair", "psnr-key", 31.5), ("pair", "ssim-key", 0.875)]


def test_a_method_and_image_another_writer_is_adding_are_waited_for_and_shared(url: str) -> None:
    now = datetime.now(UTC)
    run = RunRecord(
        "run-benchmarks", now, now, "0", None, {}, "cpu", {}, {},
        methods=[MethodRecord("m", "identity-m", {"k": 1})],
        images=[ImageRecord("set5", "a.png", "a" * 64)],
        values=[ValueRecord("m", "set5", "a.png", "psnr", 30.0)],
    )  # fmt: skip

    def save(store: Store) -> None:
        store.save_run(run)

    while_another_writer_commits(
        url,
        save,
        """INSERT INTO methods (identity, name, metadata) VALUES ('identity-m', 'm', '{"k": 1}')""",
        f"INSERT INTO images (dataset, name, sha256) VALUES ('set5', 'a.png', '{'a' * 64}')",
    )
    methods, images, values = query_rows(
        url, "SELECT name FROM methods", "SELECT name FROM images", "SELECT metric, value FROM metric_values"
    )
    assert methods == [("m",)] and images == [("a.png",)] and values == [("psnr", 30.0)]

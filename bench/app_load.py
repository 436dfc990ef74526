"""Rater app write load: 50 raters answering at once, on SQLite and on PostgreSQL.

Each rater is a thread doing what the app does for every answer, through the same `StudyStore` (one store, one
connection pool, shared by all threads, as in the Streamlit server): `submit` the answer, then look the rater
up again and fetch the next item (`rater_for_token` + `next_item`, the app's routing). Nobody waits between
answers, so this is the worst case, far above real raters (one answer every few seconds each).

Prints, per backend, the p50 / p95 latency of `submit` (one transaction: the rating and the rater's progress)
and of a whole answer (submit + routing), and ratings stored per second. Target: submit p95 < 100 ms.

    python bench/app_load.py [--raters 50] [--items 30] [--pg-url URL] [--backends sqlite,postgresql]

The study is synthetic (small random PNGs, no benchmark data needed): `--items` test stimuli plus 2 gold and
4 calibration items, so each rater answers items + 6 times. SQLite runs on a new file in a temporary folder;
PostgreSQL on a new database created (and dropped afterwards) on the server of `--pg-url` (default
SREVAL_TEST_PG_URL; `eval "$(bash .ci/postgres.sh)"` starts one); without a URL it is skipped with a message.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from sreval.study import open_study_store
from sreval.study.api import StudyStore
from sreval.study.simulate import synthetic_study

TARGET_P95_MS = 100.0


@dataclass(frozen=True)
class Result:
    backend: str
    think: float
    raters: int
    ratings: int
    seconds: float
    submit_ms: list[float]
    answer_ms: list[float]

    def row(self) -> str:
        def pct(values: list[float], q: int) -> float:
            return statistics.quantiles(values, n=100, method="inclusive")[q - 1]

        p95 = pct(self.submit_ms, 95)
        verdict = "ok" if p95 < TARGET_P95_MS else f"above the {TARGET_P95_MS:.0f} ms target"
        return (
            f"{self.backend:<11}{f'{self.think:g} s':>7}{self.raters:>7}{self.ratings:>9}{self.seconds:>9.1f}"
            f"{self.ratings / self.seconds:>11.0f}"
            f"{pct(self.submit_ms, 50):>12.1f}{p95:>12.1f}{pct(self.answer_ms, 50):>12.1f}"
            f"{pct(self.answer_ms, 95):>12.1f}   {verdict}"
        )


HEADER = (
    f"{'backend':<11}{'pause':>7}{'raters':>7}{'ratings':>9}{'seconds':>9}{'ratings/s':>11}"
    f"{'submit p50':>12}{'submit p95':>12}{'answer p50':>12}{'answer p95':>12}   (latencies in ms)"
)


def run(store: StudyStore, study: str, backend: str, raters: int, think: float) -> Result:
    """Invite `raters` raters and let them all answer everything at once, each pausing a random time (exponential,
    mean `think` seconds; none when 0) before each answer; time every submit and answer."""
    tokens = [token for _, token in store.invite(study, raters)]
    submit_ms: list[list[float]] = [[] for _ in tokens]
    answer_ms: list[list[float]] = [[] for _ in tokens]
    errors: list[BaseException] = []
    start = threading.Barrier(raters + 1)

    def rater(index: int) -> None:
        token = tokens[index]
        pauses = np.random.default_rng([index, 1])
        try:
            store.give_consent(token)
            item = store.next_item(token)
            start.wait()
            if think > 0:  # raters do not start in step
                time.sleep(pauses.uniform(0, think))
            while item is not None:
                if think > 0:
                    time.sleep(pauses.exponential(think))
                began = time.perf_counter()
                store.submit(token, item.stimulus, item.repetition, 1 + (index + item.position) % 5, 1500)
                submitted = time.perf_counter()
                store.rater_for_token(token)
                item = store.next_item(token)
                submit_ms[index].append((submitted - began) * 1000)
                answer_ms[index].append((time.perf_counter() - began) * 1000)
        except BaseException as exc:  # reported after the run
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=rater, args=(i,), name=f"rater-{i}") for i in range(raters)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} raters failed; the first: {errors[0]!r}") from errors[0]
    ratings = len(store.export(study))
    expected = sum(len(s) for s in submit_ms)
    if ratings != expected:
        raise RuntimeError(f"{expected} answers given but {ratings} ratings stored")
    return Result(
        backend, think, raters, ratings, seconds, [x for s in submit_ms for x in s], [x for s in answer_ms for x in s]
    )


@contextmanager
def pg_database(server_url: str) -> Iterator[str]:
    """A new database on the server of `server_url`, dropped afterwards."""
    name = f"sreval_bench_{uuid.uuid4().hex[:12]}"
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


def bench(url: str, backend: str, raters: int, items: int, folder: Path, thinks: list[float]) -> None:
    """One run per pause length, each on a study of its own in the database `url`; prints a row per run."""
    with open_study_store(url) as store:
        for i, think in enumerate(thinks):
            study = f"load{i}"
            (folder / study).mkdir(parents=True)
            synthetic_study(store, study, folder / study, items)
            print(run(store, study, backend, raters, think).row(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raters", type=int, default=50, help="raters answering at once (default 50)")
    parser.add_argument("--items", type=int, default=30, help="test stimuli per rater (default 30)")
    parser.add_argument("--pg-url", default=os.environ.get("SREVAL_TEST_PG_URL"), help="PostgreSQL server URL")
    parser.add_argument("--backends", default="sqlite,postgresql", help="which to run (default both)")
    parser.add_argument(
        "--think", default="1,0", help="mean pause before each answer in seconds, one run per value (default 1,0)"
    )
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    thinks = [float(t) for t in args.think.split(",") if t.strip()]

    print(
        f"{args.raters} raters × {args.items + 6} items each; {os.cpu_count()} CPUs; "
        "pause = mean pause before each answer"
    )
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="sreval-app-load-") as tmp:
        root = Path(tmp)
        for backend in backends:
            folder = root / backend
            folder.mkdir()
            if backend == "sqlite":
                bench(f"sqlite:///{root / 'load.sqlite'}", backend, args.raters, args.items, folder, thinks)
            elif backend == "postgresql":
                if not args.pg_url:
                    print('postgresql skipped: no --pg-url or SREVAL_TEST_PG_URL (eval "$(bash .ci/postgres.sh)")')
                    continue
                with pg_database(args.pg_url) as url:
                    bench(url, backend, args.raters, args.items, folder, thinks)
            else:
                sys.exit(f"unknown backend {backend!r}: use sqlite and/or postgresql")


if __name__ == "__main__":
    main()

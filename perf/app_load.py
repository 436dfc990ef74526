"""Rater app write load: 50 raters answering at once, on SQLite and on PostgreSQL.

Each rater is a thread doing what the app does for every answer, through the same `StudyStore` (one store, one
connection pool, shared by all threads, as in the Streamlit server): `submit` the answer, then look the rater
up again and fetch the next item (`rater_for_token` + `next_item`, the app's routing). With `--processes N`
the raters are spread over N processes, each with its own store (N app servers, or N writers on one SQLite
file). With no pause between answers (`--think 0`) this is the worst case, far above real raters (one answer
every few seconds each).

Prints, per backend, the p50 / p95 latency of `submit` (one transaction: the rating and the rater's progress)
and of a whole answer (submit + routing), ratings stored per second, and the submits refused because the
database stayed busy past its timeout (the rater answers again). Targets: submit p95 < 100 ms with a 1 s
pause, and no refused submit.

    python perf/app_load.py [--raters 50] [--items 30] [--processes 1] [--think 1,0] [--pg-url URL]
                             [--backends sqlite,postgresql]

The study is synthetic (small random PNGs, no benchmark data needed): `--items` test stimuli plus 2 gold and
4 calibration items, so each rater answers items + 6 times. SQLite runs on a new file in a temporary folder;
PostgreSQL on a new database created (and dropped afterwards) on the server of `--pg-url` (default
SREVAL_TEST_PG_URL; `eval "$(bash .ci/postgres.sh)"` starts one); without a URL it is skipped with a message.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sreval.db.scratch import scratch_database
from sreval.errors import SrevalError
from sreval.study import RequestRefused, open_study_store
from sreval.study.simulate import synthetic_study

TARGET_P95_MS = 100.0


@dataclass
class Timings:
    """What one group of raters measured: latencies of every submit and answer, and the submits refused
    because the database did not answer in time (each is answered again, as the app asks the rater to)."""

    submit_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    refused: int = 0

    def add(self, other: Timings) -> None:
        self.submit_ms += other.submit_ms
        self.answer_ms += other.answer_ms
        self.refused += other.refused


@dataclass(frozen=True)
class Result:
    backend: str
    think: float
    raters: int
    processes: int
    ratings: int
    seconds: float
    timings: Timings

    def row(self) -> str:
        def pct(values: list[float], q: int) -> float:
            return statistics.quantiles(values, n=100, method="inclusive")[q - 1]

        submit, answer = self.timings.submit_ms, self.timings.answer_ms
        p95 = pct(submit, 95)
        misses = []
        if p95 >= TARGET_P95_MS:
            misses.append(f"p95 above the {TARGET_P95_MS:.0f} ms target")
        if self.timings.refused:
            misses.append("submits refused")
        return (
            f"{self.backend:<11}{f'{self.think:g} s':>7}{self.raters:>7}{self.processes:>6}{self.ratings:>9}"
            f"{self.seconds:>9.1f}{self.ratings / self.seconds:>11.0f}{self.timings.refused:>9}"
            f"{pct(submit, 50):>12.1f}{p95:>12.1f}{pct(answer, 50):>12.1f}{pct(answer, 95):>12.1f}"
            f"   {'; '.join(misses) or 'ok'}"
        )


HEADER = (
    f"{'backend':<11}{'pause':>7}{'raters':>7}{'procs':>6}{'ratings':>9}{'seconds':>9}{'ratings/s':>11}"
    f"{'refused':>9}{'submit p50':>12}{'submit p95':>12}{'answer p50':>12}{'answer p95':>12}   (latencies in ms)"
)


def rate(url: str, tokens: list[str], first: int, think: float, start: Any) -> Timings:
    """The raters of `tokens` (numbered from `first`), one thread each, answering everything through one store
    of their own (as one app server does): `submit`, then the app's routing (`rater_for_token` + `next_item`).
    Everyone starts at `start` (a barrier shared with the other processes)."""
    timings = [Timings() for _ in tokens]
    errors: list[BaseException] = []
    store = open_study_store(url)
    ready = threading.Barrier(len(tokens) + 1)
    go = threading.Event()  # set once every process is ready (`start`)

    def rater(index: int) -> None:
        token, own = tokens[index], timings[index]
        number = first + index
        pauses = np.random.default_rng([number, 1])
        try:
            store.give_consent(token)
            item = store.next_item(token)
            ready.wait()
            go.wait()
            if think > 0:  # raters do not start in step
                time.sleep(pauses.uniform(0, think))
            while item is not None:
                if think > 0:
                    time.sleep(pauses.exponential(think))
                began = time.perf_counter()
                try:
                    store.submit(token, item.stimulus, item.repetition, 1 + (number + item.position) % 5, 1500)
                except RequestRefused:
                    raise
                except SrevalError:  # busy: the rater is asked to answer again
                    own.refused += 1
                    continue
                submitted = time.perf_counter()
                store.rater_for_token(token)
                item = store.next_item(token)
                own.submit_ms.append((submitted - began) * 1000)
                own.answer_ms.append((time.perf_counter() - began) * 1000)
        except BaseException as exc:  # reported after the run
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=rater, args=(i,), name=f"rater-{first + i}") for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
        start.wait()
        go.set()
    finally:
        go.set()  # (also when a barrier broke: the raters then see it broken or finish)
        for thread in threads:
            thread.join()
        store.close()
    if errors:
        raise RuntimeError(f"{len(errors)} raters failed; the first: {errors[0]!r}") from errors[0]
    total = Timings()
    for own in timings:
        total.add(own)
    return total


def _rate_in_process(url: str, tokens: list[str], first: int, think: float, start: Any, results: Any) -> None:
    try:
        results.put(rate(url, tokens, first, think, start))
    except BaseException as exc:
        start.abort()
        results.put(RuntimeError(f"raters {first}-{first + len(tokens) - 1}: {exc!r}"))


def run(url: str, study: str, backend: str, raters: int, think: float, processes: int) -> Result:
    """Invite `raters` raters and let them all answer everything at once, each pausing a random time (exponential,
    mean `think` seconds; none when 0) before each answer, spread over `processes` processes (1: threads of
    this one); time every submit and answer."""
    with open_study_store(url) as store:
        tokens = [token for _, token in store.invite(study, raters)]
    groups = [list(range(raters))[i::processes] for i in range(processes)]
    timings = Timings()
    if processes == 1:
        start = threading.Barrier(2)
        worker = threading.Thread(target=lambda: timings.add(rate(url, tokens, 0, think, start)))
        worker.start()
        start.wait()
        began = time.perf_counter()
        worker.join()
    else:
        # fork: the children share what this process has loaded; it holds no connection and no thread now.
        context = multiprocessing.get_context("fork")
        start, results = context.Barrier(processes + 1), context.Queue()
        children = [
            context.Process(
                target=_rate_in_process, args=(url, [tokens[i] for i in group], group[0], think, start, results)
            )
            for group in groups
        ]
        for child in children:
            child.start()
        start.wait()
        began = time.perf_counter()
        for _ in children:
            got = results.get()
            if isinstance(got, BaseException):
                raise got
            timings.add(got)
        for child in children:
            child.join()
    seconds = time.perf_counter() - began
    with open_study_store(url) as store:
        ratings = len(store.export(study))
    if ratings != len(timings.submit_ms):
        raise RuntimeError(f"{len(timings.submit_ms)} answers acknowledged but {ratings} ratings stored")
    return Result(backend, think, raters, processes, ratings, seconds, timings)


def bench(url: str, backend: str, raters: int, items: int, folder: Path, thinks: list[float], processes: int) -> None:
    """One run per pause length, each on a study of its own in the database `url`; prints a row per run."""
    for i, think in enumerate(thinks):
        study = f"load{i}"
        (folder / study).mkdir(parents=True)
        with open_study_store(url) as store:
            synthetic_study(store, study, folder / study, items)
        print(run(url, study, backend, raters, think, processes).row(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raters", type=int, default=50, help="raters answering at once (default 50)")
    parser.add_argument("--items", type=int, default=30, help="test stimuli per rater (default 30)")
    parser.add_argument("--pg-url", default=os.environ.get("SREVAL_TEST_PG_URL"), help="PostgreSQL server URL")
    parser.add_argument("--backends", default="sqlite,postgresql", help="which to run (default both)")
    parser.add_argument(
        "--processes", type=int, default=1, help="spread the raters over this many processes (default 1: threads)"
    )
    parser.add_argument(
        "--think", default="1,0", help="mean pause before each answer in seconds, one run per value (default 1,0)"
    )
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    thinks = [float(t) for t in args.think.split(",") if t.strip()]
    if not 1 <= args.processes <= args.raters:
        sys.exit(f"--processes must be 1 to --raters ({args.raters}), got {args.processes}")

    print(
        f"{args.raters} raters × {args.items + 6} items each in {args.processes} process(es); {os.cpu_count()} CPUs; "
        "pause = mean pause before each answer"
    )
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="sreval-app-load-") as tmp:
        root = Path(tmp)
        for backend in backends:
            folder = root / backend
            folder.mkdir()
            if backend == "sqlite":
                url = f"sqlite:///{root / 'load.sqlite'}"
                bench(url, backend, args.raters, args.items, folder, thinks, args.processes)
            elif backend == "postgresql":
                if not args.pg_url:
                    print('postgresql skipped: no --pg-url or SREVAL_TEST_PG_URL (eval "$(bash .ci/postgres.sh)")')
                    continue
                with scratch_database(args.pg_url, "sreval_bench_") as url:
                    bench(url, backend, args.raters, args.items, folder, thinks, args.processes)
            else:
                sys.exit(f"unknown backend {backend!r}: use sqlite and/or postgresql")


if __name__ == "__main__":
    main()

"""Benchmark workers as forked processes: the same values, counts and stored run as one process; the metric cache
they write reaches the store once; their errors, deaths and Ctrl-C end the run cleanly with nothing stored, and no
worker outlives the run, not even when its parent is killed."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from benchmark_helpers import run_baselines
from sqlalchemy import create_engine, text

from sreval.benchmark import pool
from sreval.errors import ParameterError, SrevalError
from sreval.methods.base import MethodInput
from sreval.methods.baselines import NearestNeighbour


@pytest.fixture
def pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A file to which every process that makes a nearest-neighbour output appends its pid."""
    record = tmp_path / "pids.txt"
    real = NearestNeighbour.super_resolve

    def recorded(self: NearestNeighbour, item: MethodInput) -> np.ndarray:
        with record.open("a") as f:
            f.write(f"{os.getpid()}\n")
        return real(self, item)

    monkeypatch.setattr(NearestNeighbour, "super_resolve", recorded)
    yield record


def _other_pids(record: Path) -> set[int]:
    return {int(line) for line in record.read_text().split()} - {os.getpid()}


def test_worker_processes_give_exactly_the_values_counts_and_order_of_worker_threads(
    tmp_path: Path, data_root: Path, pids: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forked = run_baselines(tmp_path / "forked", data_root, workers=2, datasets=("set5", "set14"))
    assert len(_other_pids(pids)) == 2  # two workers, neither of them this process
    pids.unlink()
    monkeypatch.setattr(pool, "fork_blocker", lambda device, store: "threads, for the comparison")
    threaded = run_baselines(tmp_path / "threaded", data_root, workers=2, datasets=("set5", "set14"))
    assert _other_pids(pids) == set()
    assert forked.per_image.equals(threaded.per_image)  # both: one torch thread per worker
    assert vars(forked.counts) == vars(threaded.counts)
    assert forked.record.images == threaded.record.images
    assert forked.record.values == threaded.record.values
    assert set(forked.timings) == set(threaded.timings)


def test_the_metric_cache_the_workers_write_is_complete_and_has_each_value_once(
    tmp_path: Path, data_root: Path
) -> None:
    cold = run_baselines(tmp_path, data_root, workers=2)
    assert cold.counts.metrics_computed == len(cold.per_image) and cold.counts.metrics_cached == 0
    warm = run_baselines(tmp_path, data_root, workers=2)
    assert warm.counts.metrics_computed == 0 and warm.counts.metrics_cached == len(cold.per_image)
    assert warm.per_image.equals(cold.per_image)
    engine = create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    with engine.connect() as conn:
        rows, keys = conn.execute(
            text("SELECT count(*), count(DISTINCT pair_key || ' ' || metric_key) FROM metric_cache")
        ).one()
    engine.dispose()
    assert rows == keys > 0


def test_an_error_in_a_worker_process_stops_the_run_with_that_error(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = os.getpid()

    def failing(self: NearestNeighbour, item: MethodInput) -> np.ndarray:
        if os.getpid() != parent and item.entry.name == "woman":
            raise ParameterError("scale", "a parameter error raised in a worker")  # does not survive pickling as is
        return item.hr.pixels.copy()

    monkeypatch.setattr(NearestNeighbour, "super_resolve", failing)
    with pytest.raises(SrevalError, match="a parameter error raised in a worker"):
        run_baselines(tmp_path, data_root, workers=2)


def test_a_worker_process_that_dies_fails_the_run_with_one_clear_error(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = os.getpid()

    def dying(self: NearestNeighbour, item: MethodInput) -> np.ndarray:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return item.hr.pixels.copy()

    monkeypatch.setattr(NearestNeighbour, "super_resolve", dying)
    with pytest.raises(SrevalError, match="worker process died"):
        run_baselines(tmp_path, data_root, workers=2)


def test_fork_blocker_names_what_rules_out_worker_processes(tmp_path: Path) -> None:
    class Plain:
        pass

    cpu = torch.device("cpu")
    assert pool.fork_blocker(cpu, None) is None
    assert "cuda" in str(pool.fork_blocker(torch.device("cuda"), None))
    assert "Plain" in str(pool.fork_blocker(cpu, Plain()))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert "threads" in str(pool.fork_blocker(cpu, None))
    finally:
        stop.set()
        other.join()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        assert "torch.distributed" in str(pool.fork_blocker(cpu, None))
    finally:
        dist.destroy_process_group()
    assert pool.fork_blocker(cpu, None) is None


def test_with_another_thread_running_the_run_uses_threads_and_gives_the_same_values(
    tmp_path: Path, data_root: Path, pids: Path
) -> None:
    forked = run_baselines(tmp_path / "forked", data_root, workers=2)
    pids.unlink()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        threaded = run_baselines(tmp_path / "threaded", data_root, workers=2)
    finally:
        stop.set()
        other.join()
    assert _other_pids(pids) == set()
    assert threaded.per_image.equals(forked.per_image)


def _children(pid: int) -> set[int]:
    try:
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_cli(tmp: Path, data_root: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    """A long `sreval run-benchmarks` with 2 workers, once both worker processes have started. Its stderr goes to
    a file, not a pipe: a worker left behind would hold a pipe open and make reading it hang."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}  # no user config: a home of its own
    env.update(SREVAL_DATA_ROOT=str(data_root), HOME=str(tmp / "home"))
    command = [
        sys.executable, "-m", "sreval", "run-benchmarks", "--methods", "bicubic,nn", "--datasets", "bsd100",
        "--metrics", "psnr,ssim,niqe", "--workers", "2", "--db", f"sqlite:///{tmp / 'results.db'}",
        "--cache-dir", str(tmp / "cache"), "--out", str(tmp / "out"), "-q",
    ]  # fmt: skip
    with (tmp / "stderr.txt").open("wb") as err:
        process = subprocess.Popen(command, env=env, stderr=err, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(children := _children(process.pid)) < 2:
        assert process.poll() is None, (tmp / "stderr.txt").read_text()
        assert time.monotonic() < deadline, "the worker processes did not start"
        time.sleep(0.05)
    return process, children


def _stored_runs(tmp: Path) -> int:
    if not (tmp / "results.db").exists():
        return 0
    engine = create_engine(f"sqlite:///{tmp / 'results.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM runs")).scalar_one())
    finally:
        engine.dispose()


def _gone_within(pids: set[int], seconds: float) -> bool:
    """Whether every process of `pids` has ended within `seconds`; those left are killed, so none outlives the
    test."""
    deadline = time.monotonic() + seconds
    while left := {pid for pid in pids if _alive(pid)}:
        if time.monotonic() > deadline:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the parent-death signal is Linux's")
def test_workers_stop_when_their_parent_is_killed(tmp_path: Path, data_root: Path) -> None:
    process, workers = _start_cli(tmp_path, data_root)
    process.kill()
    process.wait(timeout=10)
    # Each is stopped by the kernel at once, not after its image (a BSD100 image takes about a second).
    assert _gone_within(workers, 5.0)
    assert _stored_runs(tmp_path) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_ends_the_run_and_its_workers_with_nothing_stored(tmp_path: Path, data_root: Path) -> None:
    process, workers = _start_cli(tmp_path, data_root)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C on a terminal does: the whole foreground group
    try:
        code = process.wait(timeout=60)
    finally:
        gone = _gone_within(workers, 5.0)
    err = (tmp_path / "stderr.txt").read_text()
    assert code == 130, err
    assert "Traceback" not in err
    assert gone
    assert _stored_runs(tmp_path) == 0


def test_what_a_worker_logs_is_handled_once_by_this_process_s_loggers_as_configured_here(
    tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = os.getpid()
    own = logging.getLogger("sreval.test.own_handler")
    seen: list[tuple[str, int]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), record.process or 0))

    collect = Collect()
    own.addHandler(collect)
    monkeypatch.setattr(own, "propagate", False)  # reaches this handler only, never the root's
    real = NearestNeighbour.super_resolve

    def logging_nn(self: NearestNeighbour, item: MethodInput) -> np.ndarray:
        own.warning("made %s in %s", item.entry.name, "a worker" if os.getpid() != parent else "the parent")
        return real(self, item)

    monkeypatch.setattr(NearestNeighbour, "super_resolve", logging_nn)
    try:
        run_baselines(tmp_path, data_root, workers=2)
    finally:
        own.removeHandler(collect)
    messages = sorted(message for message, _ in seen)
    assert messages == sorted(
        [f"made {name} in {'the parent' if name == 'baby' else 'a worker'}"
         for name in ("baby", "bird", "butterfly", "head", "woman")]
    )  # fmt: skip
    assert len({pid for _, pid in seen} - {parent}) == 2  # the records kept the pid of the worker that made them

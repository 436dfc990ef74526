"""The images of a benchmark share scored a few at once: by forked worker processes on the CPU, else by threads.

Why processes: the metric kernels are long chains of short numpy calls, each of which lets go of the GIL and takes
it back, so two threads doing them mostly wait for each other (on the 2-core development machine two threads
running NIQE's MSCN kernel got 1.2× the work of one done, two processes 2×). The workers are forked once the
first image is done, so they inherit what it loaded (models, metric models, the reference planes' code paths)
and need nothing pickled but an image's number on the way in and its values, counts and phase times on the way
out. Each opens its own connections to the results store (`after_fork`): the parent's must not be shared.

Processes are used only where a fork is safe and their results reach the parent (`fork_blocker` says why not
otherwise): the CPU, a platform with fork, no other Python thread in this process (one holding a lock at the fork
would leave it held forever in the child), and a metric store that can reconnect after a fork, or none.

What the workers log is handled here, by this process's loggers and handlers, as if logged here (`_Records`).

On Ctrl-C the workers ignore the signal and finish the image they are on, as threads do; images not started are
dropped. A worker whose parent dies is killed by the kernel (Linux), so none is left behind computing.
"""

from __future__ import annotations

import ctypes
import logging
import logging.handlers
import multiprocessing
import multiprocessing.queues
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from sreval.errors import SrevalError

Item = TypeVar("Item")
Done = TypeVar("Done")

#: What each worker process computes, set in the parent just before the fork, so that the workers inherit it
#: (a closure over the share's items, methods and caches) and only an item's position travels to them.
_job: Callable[[int], Any] | None = None


def fork_blocker(device: torch.device, metric_store: object | None) -> str | None:
    """Why this process cannot fork benchmark workers now, or None when it can."""
    if device.type != "cpu":
        return f"the device is {device.type}, not the CPU"
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this platform cannot fork"
    if threading.active_count() > 1:
        return "other threads are running in this process"
    if dist.is_available() and dist.is_initialized():
        return "a torch.distributed process group (and its threads) runs in this process"
    if metric_store is not None and not callable(getattr(metric_store, "after_fork", None)):
        return f"the metric store ({type(metric_store).__name__}) cannot reconnect in a forked process"
    return None


def in_threads(
    items: Sequence[Item], workers: int, compute: Callable[[Item], Done], merge: Callable[[Done, Item], None]
) -> None:
    """`merge(compute(item), item)` for every item, `workers` threads computing, merged here as they finish."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="sreval-benchmark")
    try:
        pending = {pool.submit(compute, item): item for item in items}
        for future in as_completed(pending):
            merge(future.result(), pending[future])
    finally:
        # On an error (or Ctrl-C), items not started are dropped; the ones running finish first.
        pool.shutdown(wait=True, cancel_futures=True)


def in_processes(
    items: Sequence[Item],
    workers: int,
    compute: Callable[[Item], Done],
    merge: Callable[[Done, Item], None],
    *,
    torch_threads: int,
    after_fork: Callable[[], None] | None = None,
) -> None:
    """As `in_threads`, in `workers` forked processes with `torch_threads` torch threads each; `after_fork` runs
    in each worker first. Call only when `fork_blocker` says nothing. `compute`'s results must pickle."""
    global _job
    if not items:
        return
    if _job is not None:
        raise RuntimeError("benchmark worker processes do not nest")
    _job = lambda position: compute(items[position])  # noqa: E731  (inherited by the fork, never pickled)
    context = multiprocessing.get_context("fork")
    records = _Records(context)
    pool = ProcessPoolExecutor(
        min(workers, len(items)),
        mp_context=context,
        initializer=_start_worker,
        initargs=(torch_threads, after_fork, records),
    )
    try:
        with _sigint_held_for_forks():  # the first submit forks every worker
            first = pool.submit(_run_job, 0)
        pending: dict[Future[Any], Item] = {first: items[0]}
        pending.update({pool.submit(_run_job, i): items[i] for i in range(1, len(items))})
        for future in as_completed(pending):
            records.handle()
            try:
                done = future.result()
            except BrokenProcessPool as exc:
                raise SrevalError(
                    "a benchmark worker process died (killed, or out of memory?); nothing was stored. "
                    "--workers 1 runs the images in this process"
                ) from exc
            merge(done, pending[future])
    finally:
        _job = None
        pool.shutdown(wait=True, cancel_futures=True)
        records.handle()
        records.close()


class _Records:
    """Log records of the worker processes, sent to this process and handled by its loggers."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self._queue: multiprocessing.queues.Queue[logging.LogRecord] = context.Queue()

    def send_from_here(self) -> None:
        """In a worker: every record a logger lets through goes to the parent once, where its logger's handlers
        and propagation (the parent's own configuration) take it as usual."""
        for name in list(logging.root.manager.loggerDict):
            logger = logging.getLogger(name)
            logger.propagate = True
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(logging.handlers.QueueHandler(self._queue))

    def handle(self) -> None:
        """Handle here the records sent so far, as the logger that made each one would have."""
        while True:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                return
            logging.getLogger(record.name).handle(record)

    def close(self) -> None:
        self._queue.close()
        self._queue.join_thread()


@contextmanager
def _sigint_held_for_forks() -> Iterator[None]:
    """SIGINT blocked in this thread while the workers are forked: they are born with it blocked and ignore it
    before unblocking it (`_start_worker`), so Ctrl-C, which reaches the whole process group, is this process's
    alone (it stops handing out images; the workers finish their own). A Ctrl-C during the fork waits here until
    the block ends, rather than being lost."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _start_worker(torch_threads: int, after_fork: Callable[[], None] | None, records: _Records) -> None:
    records.send_from_here()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _stop_with_parent()
    torch.set_num_threads(torch_threads)
    if after_fork is not None:
        after_fork()


def _stop_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux's PR_SET_PDEATHSIG). SIGKILL, since the
    worker keeps its parent's SIGTERM handler (training's, say, which only asks the loop to stop)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # without it a worker whose parent was killed finishes the image it is on and exits at the next


def _run_job(position: int) -> Any:
    assert _job is not None, "a benchmark worker runs only in a process forked by in_processes"
    try:
        return _job(position)
    except Exception as exc:
        raise _portable(exc) from None


def _portable(exc: Exception) -> Exception:
    """`exc` if it comes back whole through pickle (the way to the parent), else an `SrevalError` with its text."""
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:
        copy = None
    if type(copy) is type(exc) and str(copy) == str(exc):
        return exc
    return SrevalError(f"{type(exc).__name__}: {exc}") if not isinstance(exc, SrevalError) else SrevalError(str(exc))

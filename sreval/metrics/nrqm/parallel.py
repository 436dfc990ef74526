"""Running the independent pieces of the NRQM features (steerable bands, band enlargements, GSM bands, FFT
local means, the block statistics of groups 1 and 3) side by side on torch's CPU threads.

Each piece is small: a few milliseconds of many small tensor operations. Splitting every operation across
torch's threads, as torch does by itself, puts a barrier after each of them, and on a busy machine each barrier
waits for a descheduled core (a piece then runs several times slower on two threads than on one). Here the
pieces run whole, one per thread, each with a single torch thread; with one thread (what the benchmark runner
gives each of its workers) they simply run in turn, on the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class Pieces:
    """Runs functions as independent pieces on `threads` threads (inline when `threads` is 1).

    `workers` is the thread count that a piece's own scipy FFTs may use: 1 inside a piece when pieces run
    side by side, all threads for work done between pieces on the calling thread (`caller_workers`)."""

    def __init__(self, threads: int) -> None:
        self.threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        if self.threads > 1:
            # A worker's torch thread count is its own (OpenMP's per-thread setting); setting it from the
            # worker also lowers the default that threads started later inherit, which `close` restores.
            self._pool = ThreadPoolExecutor(self.threads, initializer=torch.set_num_threads, initargs=(1,))

    @property
    def workers(self) -> int:
        """Threads for the scipy FFTs inside a piece."""
        return 1 if self._pool is not None else self.threads

    @property
    def caller_workers(self) -> int:
        """Threads for the scipy FFTs run on the calling thread between pieces."""
        return self.threads

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """fn of each item, in order."""
        if self._pool is None:
            return [fn(item) for item in items]
        return list(self._pool.map(fn, items))

    def submit(self, fn: Callable[[], R]) -> Future[R]:
        """fn(), started now where there are threads, else computed now; its result from `.result()`."""
        if self._pool is not None:
            return self._pool.submit(fn)
        done: Future[R] = Future()
        done.set_result(fn())
        return done

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            torch.set_num_threads(self.threads)


#: Pieces that run in turn on the calling thread with one FFT thread: the default of the functions that take
#: `pieces`, so that each can be called (and tested) on its own.
SERIAL = Pieces(1)


@contextmanager
def pieces_on_torch_threads() -> Iterator[Pieces]:
    """Pieces on as many threads as torch uses for the calling thread (`torch.get_num_threads()`)."""
    pieces = Pieces(torch.get_num_threads())
    try:
        yield pieces
    finally:
        pieces.close()

"""One benchmark run sharded over the processes that `torchrun` starts, on one machine or several.

Only the environment torchrun sets is read (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); without it, or
with WORLD_SIZE 1, a run is the single process it always was. Each process (rank) takes a share of the work items
(`plan_shards`: balanced by cost, the same on every rank), on its own device (`rank_device`); rank 0 gathers the
shares and makes the one run out of them, which is therefore the single process's run value for value.

Failure: a rank that fails says so in the rendezvous store (`Ranks.fail`) before it exits; the others look there
between images (`Watch`) and while they wait for each other (`Group.step`), so they stop within about an image,
each with one error naming the failed rank, and nothing is stored. A rank that dies without a word is noticed by
the collective timeout; torchrun also stops the other ranks on the same machine (SIGTERM, which becomes an error
here: `stop_on_sigterm`).
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.distributed.distributed_c10d import PrefixStore
from torch.distributed.rendezvous import rendezvous

from sreval.benchmark.runner import WorkItem
from sreval.errors import ParameterError, SrevalError
from sreval.progress import Progress

T = TypeVar("T")

#: Default seconds a rank waits for the others (to start, to finish their shares) before the run fails.
TIMEOUT_S = 1800.0
#: Seconds between two looks at the store while a rank waits for the others, and between images at most.
POLL_S = 0.05


class RunStopped(SrevalError):
    """This rank stops because another one failed or the ranks lost each other: not a failure of its own."""


class Terminated(RunStopped):
    """SIGTERM: torchrun stops the ranks, after one of them failed or because it is stopped itself."""


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in the run: its rank, the number of ranks, its rank on this machine."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks_from_env(environ: Mapping[str, str] | None = None) -> Ranks | None:
    """This process's place in a torchrun run, or None when it runs alone (WORLD_SIZE unset or 1)."""
    env = os.environ if environ is None else environ
    if env.get("WORLD_SIZE", "1").strip() in ("", "1"):
        return None
    try:
        world_size, rank = int(env["WORLD_SIZE"]), int(env["RANK"])
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
    except (KeyError, ValueError) as exc:
        raise SrevalError(
            f"WORLD_SIZE={env.get('WORLD_SIZE')!r} asks for a sharded run, but RANK and LOCAL_RANK are missing or not"
            f" numbers ({exc}); start the run with torchrun, or unset WORLD_SIZE"
        ) from None
    if not 0 <= rank < world_size or local_rank < 0:
        raise SrevalError(f"RANK={rank} and LOCAL_RANK={local_rank} do not fit WORLD_SIZE={world_size}")
    return Ranks(rank, world_size, local_rank)


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """The device of this rank: GPU number LOCAL_RANK when the run's device is CUDA, else the CPU."""
    if device.type != "cuda":
        return torch.device("cpu")
    if ranks.local_rank >= torch.cuda.device_count():
        raise SrevalError(
            f"rank {ranks.rank} has LOCAL_RANK {ranks.local_rank}, but this machine has {torch.cuda.device_count()}"
            " GPUs: start at most one process per GPU (torchrun --nproc_per_node)"
        )
    chosen = torch.device("cuda", ranks.local_rank)
    torch.cuda.set_device(chosen)
    return chosen


def item_cost(item: WorkItem) -> int:
    """What an item costs, roughly: HR pixels × methods (SR and metrics both grow with the pixels)."""
    return item.entry.width * item.entry.height * len(item.methods)


def plan_shards(work: Sequence[WorkItem], world_size: int) -> list[list[WorkItem]]:
    """`work` split into `world_size` shares of about equal cost: the costliest item first to the least loaded
    rank (the lower rank on a tie), each share in work order. Deterministic, so every rank plans the same."""
    if world_size < 1:
        raise ParameterError("world_size", f"cannot split the work over {world_size} processes")
    loads = [0] * world_size
    shares: list[list[WorkItem]] = [[] for _ in range(world_size)]
    for item in sorted(work, key=lambda i: (-item_cost(i), i.index)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        loads[rank] += item_cost(item)
        shares[rank].append(item)
    return [sorted(share, key=lambda i: i.index) for share in shares]


def describe_ranks(devices: Sequence[str]) -> str:
    """The run's device line: how many processes and on what."""
    if len(set(devices)) == 1:
        return f"{len(devices)} processes × {devices[0]}"
    return f"{len(devices)} processes: " + ", ".join(devices)


class Group:
    """The ranks of one run, joined: a process group (NCCL on GPUs, Gloo on CPUs) for exchanging results, and the
    rendezvous store for saying that a rank failed. Use as a context manager; leaving it leaves the group."""

    def __init__(self, ranks: Ranks, device: torch.device, *, timeout_s: float = TIMEOUT_S) -> None:
        self.ranks = ranks
        self.timeout_s = timeout_s
        self._steps = 0
        timeout = timedelta(seconds=timeout_s)
        try:
            store, _, _ = next(rendezvous("env://", ranks.rank, ranks.world_size, timeout=timeout))
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(
                backend, store=PrefixStore("group", store), rank=ranks.rank, world_size=ranks.world_size,
                timeout=timeout,
            )  # fmt: skip
            # Results are Python objects on the CPU: Gloo carries them whatever the devices (None: the default
            # group, itself Gloo on CPU ranks).
            objects = dist.new_group(backend="gloo") if backend != "gloo" else None
            self._objects = objects if isinstance(objects, dist.ProcessGroup) else None  # every rank is a member
        except (RuntimeError, ValueError) as exc:
            raise SrevalError(f"rank {ranks.rank} could not join the other processes of the run: {exc}") from exc
        self._store = PrefixStore("sreval", store)

    def __enter__(self) -> Group:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        try:
            # torchrun stops the others as soon as a failed rank exits, often before they have looked at the
            # store: a stop that follows a failure is reported as that failure.
            why = self._failure_or_none() if isinstance(exc, Terminated) else None
            if why is not None:
                raise RunStopped(why) from None
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()

    def fail(self, message: str) -> None:
        """Tell the other ranks that this one failed, with why."""
        try:
            self._store.set(f"failed/{self.ranks.rank}", message)
            self._store.add("failures", 1)
        except (RuntimeError, ValueError):
            pass  # the store is gone with rank 0: the others notice the broken group instead

    def check(self) -> None:
        """Raise `SrevalError` naming the first failed rank, if another rank has failed."""
        try:
            why = self._failure()
        except (RuntimeError, ValueError) as exc:
            raise self._lost(exc) from exc
        if why is not None:
            raise RunStopped(why)

    def _failure(self) -> str | None:
        """Why the run stops, if another rank has failed (the first one that said so)."""
        if self._store.add("failures", 0) == 0:
            return None
        for rank in range(self.ranks.world_size):
            if rank != self.ranks.rank and self._store.check([f"failed/{rank}"]):
                message = self._store.get(f"failed/{rank}").decode(errors="replace")
                return f"rank {rank} of {self.ranks.world_size} failed, so the run stops: {message}"
        return None

    def _failure_or_none(self) -> str | None:
        try:
            return self._failure()
        except (RuntimeError, ValueError):
            return None  # the store is gone too: the stop's own message stands

    def step(self, work: Callable[[], T], *, main_only: bool = False) -> T | None:
        """Run `work` on every rank (or rank 0 alone), then wait until every rank is through it. A rank whose `work`
        fails tells the others and raises its own error; the others raise one naming it. Returns `work`'s value
        (None where it did not run)."""
        self._steps += 1
        value: T | None = None
        try:
            if self.ranks.is_main or not main_only:
                value = work()
        except RunStopped:
            raise
        except SrevalError as exc:
            self.fail(str(exc))
            raise
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc}")
            raise
        self._wait_for_all(f"step/{self._steps}")
        return value

    def gather(self, obj: T) -> list[T] | None:
        """Every rank's `obj`, in rank order, on rank 0 (None elsewhere). Call it after a `step`, so that every rank
        is known to be here."""
        gathered: list[Any] | None = [None] * self.ranks.world_size if self.ranks.is_main else None
        try:
            dist.gather_object(obj, gathered, dst=0, group=self._objects)
        except (RuntimeError, ValueError, pickle.PicklingError) as exc:
            raise self._lost(exc) from exc
        return gathered

    def _wait_for_all(self, key: str) -> None:
        try:
            self._store.add(key, 1)
            deadline = time.monotonic() + self.timeout_s
            while self._store.add(key, 0) < self.ranks.world_size:
                self.check()
                if time.monotonic() > deadline:
                    raise RunStopped(
                        f"rank {self.ranks.rank} waited {self.timeout_s:.0f} s for the other processes of the run"
                        " (--dist-timeout): one of them stopped or hangs; nothing was stored"
                    )
                time.sleep(POLL_S)
        except (RuntimeError, ValueError) as exc:
            raise self._lost(exc) from exc
        self.check()

    def _lost(self, exc: BaseException) -> RunStopped:
        return RunStopped(
            f"rank {self.ranks.rank} lost the other processes of the run (one of them stopped?): {exc};"
            " nothing was stored"
        )


class Watch(Progress):
    """A progress bar (shown or not) that also stops this rank, between images, when another rank has failed."""

    def __init__(self, group: Group, total: int, desc: str, unit: str, *, enabled: bool, interval: float) -> None:
        super().__init__(total, desc, unit, enabled=enabled, interval=interval)
        self._group = group
        self._looked = time.monotonic()

    def update(self, n: int = 1) -> None:
        super().update(n)
        if time.monotonic() - self._looked >= POLL_S:
            self._looked = time.monotonic()
            self._group.check()


@contextmanager
def stop_on_sigterm(ranks: Ranks) -> Iterator[None]:
    """SIGTERM (torchrun stopping the ranks after one of them failed) as an error, so that the rank says why it
    stops and nothing is stored. A rank that leaves with an error ignores SIGTERM from then on: it is about to
    say why and exit with that, which a late SIGTERM would cut short."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise Terminated(
            f"rank {ranks.rank} was stopped (SIGTERM): another process of the run failed or torchrun was stopped;"
            " nothing was stored"
        )

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except BaseException:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise
    signal.signal(signal.SIGTERM, previous)

"""`run-benchmarks` and `evaluate` under torchrun: every rank computes its share of the work, rank 0 checks the
inputs first, then gathers the shares, stores the one run and writes the CSVs (`sreval.benchmark.distributed`)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sreval import settings

if TYPE_CHECKING:
    import torch

    from sreval.benchmark.distributed import Ranks
    from sreval.benchmark.runner import BenchmarkResult
    from sreval.datasets.registry import Dataset
    from sreval.methods.base import Method
    from sreval.metrics import Metric
    from sreval.protocol import Protocol
    from sreval.results import Store


def benchmark_sharded(
    args: argparse.Namespace,
    ranks: Ranks,
    methods: Sequence[Method],
    datasets: Sequence[Dataset],
    metrics: Sequence[Metric],
    *,
    protocol: Protocol,
    device: torch.device,
    command: str,
) -> tuple[BenchmarkResult, int, float] | None:
    """This rank's part of the run; on rank 0 the run (as stored), its id and the seconds storing took."""
    from sreval import progress
    from sreval.benchmark import distributed as sharding
    from sreval.benchmark.cache import Cache
    from sreval.benchmark.runner import compute_share, default_workers, finish, plan_work
    from sreval.cli.common import save_timed, write_results
    from sreval.datasets.registry import require_files
    from sreval.provenance import describe_device
    from sreval.results import open_store

    started, t0 = datetime.now(UTC), time.perf_counter()
    device = sharding.rank_device(device, ranks)
    data_root = settings.data_root(args.data_root)
    url = settings.db_url(args.db)
    stores: list[Store] = []

    def check() -> None:
        # What a single process checks before the long computation too; the database is created or migrated here,
        # by one process, before the others open it.
        require_files(list(datasets), data_root)
        args.out.mkdir(parents=True, exist_ok=True)
        stores.append(open_store(url))

    def open_cache() -> None:
        if not stores:
            stores.append(open_store(url))

    with sharding.stop_on_sigterm(ranks), sharding.Group(ranks, device, timeout_s=args.dist_timeout) as group:
        try:
            group.step(check, main_only=True)
            group.step(open_cache)
            store = stores[0]
            cache = Cache(settings.cache_dir(args.cache_dir), enabled=not args.no_cache, metric_store=store)
            # The processes torchrun starts on one machine share its cores.
            workers = args.workers or max(1, default_workers(device) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
            mine = sharding.plan_shards(plan_work(methods, datasets), ranks.world_size)[ranks.rank]
            # The bar is rank 0's alone and counts its own share: the ranks' shares cost about the same.
            bar = sharding.Watch(
                group, sum(len(item.methods) for item in mine), "benchmark (rank 0's share)", "img",
                enabled=not args.quiet and ranks.is_main, interval=progress.LINE_INTERVAL_S,
            )  # fmt: skip
            with bar:
                share = group.step(
                    lambda: compute_share(
                        mine,
                        metrics,
                        protocol=protocol,
                        data_root=data_root,
                        cache=cache,
                        device=device,
                        bar=bar,
                        workers=workers,
                    )
                )
            shares = group.gather(share)
            devices = group.gather(describe_device(device))

            def save() -> tuple[BenchmarkResult, int, float]:
                assert shares is not None and devices is not None  # rank 0 holds what was gathered
                result = finish(
                    [s for s in shares if s is not None], methods, datasets, metrics,
                    protocol=protocol, device=device, command=command, started=started,
                    elapsed=time.perf_counter() - t0,
                )  # fmt: skip
                result.record.device = sharding.describe_ranks(devices)
                run_id, store_s = save_timed(store, result)
                write_results(args, result)
                return result, run_id, store_s

            return group.step(save, main_only=True)
        finally:
            for opened in stores:
                opened.close()

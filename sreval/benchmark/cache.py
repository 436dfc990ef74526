"""Content-addressed caches: SR images on disk, metric values in the results store.

SR image key: method identity + HR file checksum + protocol parameters and version; the PNG lives under the
cache folder (for methods that are worth it: `Method.cache_output`). Metric key: checksum of the SR pixels + HR
file checksum (the pair), then the metric's own key (name, protocol parameters and version, model checksum);
values live in the results store's `metric_cache` table. A computed output's values are also kept under its
output key (derived from the SR image key, which fixes the pixels as it fixes the cached PNG), so that a run whose
values are all known needs neither the SR image nor its checksum. Changing any input gives a new key, so a stale
entry is never read and nothing is invalidated by hand.
"""

from __future__ import annotations

import hashlib
import threading
import typing  # typing.Protocol by its full name: in sreval, `Protocol` is the evaluation protocol
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from sreval.errors import SrevalError
from sreval.imageio import load_image, save_png


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class MetricValueStore(typing.Protocol):
    """Where metric values are remembered (`sreval.results.Store` in practice)."""

    def cached_metrics(self, pair_key: str) -> dict[str, float]: ...

    def cache_metrics(self, entries: Mapping[str, Mapping[str, float]]) -> None: ...


class Cache:
    def __init__(self, root: Path, *, enabled: bool = True, metric_store: MetricValueStore | None = None) -> None:
        self.root = root
        self.enabled = enabled
        self.metric_store = metric_store
        # Benchmark workers share one cache; a store's connection is not assumed to take concurrent calls.
        self._store_lock = threading.Lock()
        self._batches = threading.local()  # each worker's values not yet written (`batched_writes`)

    @staticmethod
    def sr_key(method_identity: str, hr_sha256: str, protocol_key: str) -> str:
        return _key("sr", method_identity, hr_sha256, protocol_key)

    @staticmethod
    def pair_key(sr_pixels_sha256: str, hr_sha256: str) -> str:
        return _key("pair", sr_pixels_sha256, hr_sha256)

    @staticmethod
    def output_key(sr_key: str) -> str:
        """Metric values of the output that `sr_key` names (the SR key includes the HR checksum)."""
        return _key("output", sr_key)

    def _sr_path(self, key: str) -> Path:
        return self.root / "sr" / key[:2] / f"{key}.png"

    def get_sr(self, key: str) -> np.ndarray | None:
        path = self._sr_path(key)
        if not self.enabled or not path.is_file():
            return None
        try:
            return load_image(path).pixels
        except SrevalError:
            return None  # a damaged cache entry is recomputed and overwritten

    def put_sr(self, key: str, pixels: np.ndarray) -> None:
        if self.enabled:
            # Not forced to disk: an entry lost or damaged by a power cut is missing or unreadable (PNG
            # checksums), and so recomputed, as `get_sr` does for any damaged entry.
            save_png(self._sr_path(key), pixels, compress_level=1, durable=False)

    def _batch(self) -> dict[str, dict[str, float]] | None:
        batch: dict[str, dict[str, float]] | None = getattr(self._batches, "pending", None)
        return batch

    def get_metrics(self, key: str) -> dict[str, float]:
        if not self.enabled or self.metric_store is None:
            return {}
        with self._store_lock:
            known = self.metric_store.cached_metrics(key)
        batch = self._batch()
        return {**known, **batch[key]} if batch is not None and key in batch else known

    def put_metrics(self, key: str, values: dict[str, float]) -> None:
        if not self.enabled or self.metric_store is None or not values:
            return
        batch = self._batch()
        if batch is not None:
            batch.setdefault(key, {}).update(values)
            return
        with self._store_lock:
            self.metric_store.cache_metrics({key: values})

    @contextmanager
    def batched_writes(self) -> Iterator[None]:
        """Metric values this thread puts inside the block are written in one transaction at its end (a commit
        waits for the disk, so one per HR image rather than one per output); `get_metrics` sees them meanwhile.
        On an error inside the block they are dropped, as values of an unfinished image."""
        if self._batch() is not None:
            raise RuntimeError("batched_writes blocks do not nest")
        batch: dict[str, dict[str, float]] = {}
        self._batches.pending = batch
        try:
            yield
        finally:
            self._batches.pending = None
        if batch and self.enabled and self.metric_store is not None:
            with self._store_lock:
                self.metric_store.cache_metrics(batch)

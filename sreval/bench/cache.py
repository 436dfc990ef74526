"""Content-addressed on-disk cache of SR images and metric values.

SR image key: method identity + HR file checksum + protocol parameters and version. Metric key: checksum of
the SR pixels + HR file checksum + metric name and protocol. Changing any of these gives a new key, so a
stale entry is never read; nothing is ever invalidated by hand. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from sreval.errors import SrevalError
from sreval.imageio import load_image, save_png


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class Cache:
    def __init__(self, root: Path, *, enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled

    @staticmethod
    def sr_key(method_identity: str, hr_sha256: str, protocol_key: str) -> str:
        return _key("sr", method_identity, hr_sha256, protocol_key)

    @staticmethod
    def pair_key(sr_pixels_sha256: str, hr_sha256: str) -> str:
        return _key("pair", sr_pixels_sha256, hr_sha256)

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def get_sr(self, key: str) -> np.ndarray | None:
        path = self._path("sr", key, ".png")
        if not self.enabled or not path.is_file():
            return None
        try:
            return load_image(path).pixels
        except SrevalError:
            return None  # a damaged cache entry is recomputed and overwritten

    def put_sr(self, key: str, pixels: np.ndarray) -> None:
        if self.enabled:
            save_png(self._path("sr", key, ".png"), pixels, compress_level=1)

    def get_metrics(self, key: str) -> dict[str, float]:
        path = self._path("metrics", key, ".json")
        if not self.enabled or not path.is_file():
            return {}
        try:
            return {k: float(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, OSError, AttributeError):
            return {}

    def put_metrics(self, key: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        path = self._path("metrics", key, ".json")
        merged = {**self.get_metrics(key), **values}
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".part") as tmp:
            json.dump(merged, tmp, sort_keys=True)
        os.replace(tmp.name, path)

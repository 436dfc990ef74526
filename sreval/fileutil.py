"""Atomic file writes: a reader never sees half a file, and a failed or interrupted write leaves none behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing; on success it replaces `path` (mode 644), on any error
    (Ctrl-C included) it is removed. Parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(mode, dir=path.parent, delete=False, suffix=".part", **kwargs)  # noqa: SIM115
    try:
        with tmp:
            yield tmp
        os.chmod(tmp.name, 0o644)  # NamedTemporaryFile is private (600); results and assets are for sharing
        os.replace(tmp.name, path)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise

"""Atomic file writes: a reader never sees half a file, and a failed or interrupted write leaves none behind."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

#: Modes `atomic_open` accepts: it always writes a whole new file (appending or reading would lose data).
WRITE_MODES = ("w", "wb", "wt", "w+", "wb+", "w+b", "wt+", "w+t")


@contextmanager
def atomic_open(path: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing; on success it replaces `path`, on any error (Ctrl-C
    included) it is removed. Parent folders are created. `mode` is one of `WRITE_MODES`; `kwargs` go to `open`.

    The file ends up with the permissions a plain `open(path, "w")` would give it: a new file 0666 less the umask
    (so CSVs, reports and exported ratings are private under umask 077 and readable by all under 022), a file
    that is replaced its own permission bits (a deliberate `chmod` survives a rewrite, as it does with `open`).
    Owner and group are the writer's, as for any new file.
    """
    if mode not in WRITE_MODES:
        raise ValueError(
            f"atomic_open writes a whole new file: mode {mode!r} is not one of {', '.join(map(repr, WRITE_MODES))}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        kept: int | None = stat.S_IMODE(os.stat(path).st_mode) & 0o777  # never set-id bits
    except FileNotFoundError:
        kept = None
    tmp = path.with_name(f".{path.name[:200]}.{secrets.token_hex(8)}.part")
    # Exclusive creation ("x"): a file of this call's own, created with the mode open() gives (0666 & ~umask);
    # a temporary-file helper would make it 0600 whatever the umask.
    file = open(tmp, mode.replace("w", "x"), **kwargs)  # noqa: SIM115 - closed below, before the rename
    try:
        with file:
            if kept is not None:
                os.chmod(tmp, kept)  # before any data is in it
            yield file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

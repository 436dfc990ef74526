"""Where sreval keeps things: data root, cache, results database. One function per setting.

Each setting is resolved the same way: an explicit value (CLI flag) first, then an environment variable,
then a default under the user's XDG folders.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding Set5/HR, Set14/HR, ... (`--data-root`, then SREVAL_DATA_ROOT, then the download folder)."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("SREVAL_DATA_ROOT"):
        return Path(env).expanduser()
    return _xdg("XDG_DATA_HOME", ".local/share") / "sreval" / "datasets"


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Content-addressed cache of SR images and metric values (`--cache-dir`, then SREVAL_CACHE)."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("SREVAL_CACHE"):
        return Path(env).expanduser()
    return _xdg("XDG_CACHE_HOME", ".cache") / "sreval"


def db_url(explicit: str | None = None) -> str:
    """Results database as an SQLAlchemy URL (`--db`, then SREVAL_DB, then an SQLite file in the data home)."""
    if explicit:
        return explicit
    if env := os.environ.get("SREVAL_DB"):
        return env
    path = _xdg("XDG_DATA_HOME", ".local/share") / "sreval" / "results.sqlite"
    return f"sqlite:///{path}"

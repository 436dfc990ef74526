"""Where sreval keeps things: data root, cache, results database, zoo, training sets, studies, and the torch hub
cache it reads checkpoints from. One function per setting.

Each setting is resolved the same way: an explicit value (CLI flag) first, then an environment variable,
then a default under the user's XDG folders. `_data_home` and `_cache_home` are the only places that know the
XDG fallbacks.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def _data_home() -> Path:
    """sreval's folder in the user's data home: `$XDG_DATA_HOME/sreval`, default `~/.local/share/sreval`."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "sreval"


def _cache_home() -> Path:
    """The user's cache home: `$XDG_CACHE_HOME`, default `~/.cache`."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def _resolve(explicit: str | os.PathLike[str] | None, env: str, default: Path) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    if value := os.environ.get(env):
        return Path(value).expanduser()
    return default


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding Set5/HR, Set14/HR, ... (`--data-root`, then SREVAL_DATA_ROOT, then the download folder)."""
    return _resolve(explicit, "SREVAL_DATA_ROOT", _data_home() / "datasets")


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Content-addressed cache of SR images and metric values (`--cache-dir`, then SREVAL_CACHE)."""
    return _resolve(explicit, "SREVAL_CACHE", _cache_home() / "sreval")


def assets_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where sreval installs the model files it downloads or is given (explicit, then SREVAL_ASSETS_DIR, then
    `assets/` in the cache folder)."""
    return _resolve(explicit, "SREVAL_ASSETS_DIR", cache_dir() / "assets")


def db_url(explicit: str | None = None) -> str:
    """Results database as an SQLAlchemy URL (`--db`, then SREVAL_DB, then an SQLite file in the data home)."""
    if explicit:
        return explicit
    if env := os.environ.get("SREVAL_DB"):
        return env
    return f"sqlite:///{_data_home() / 'results.sqlite'}"


def zoo_dirs() -> list[Path]:
    """The user's zoo roots: the folders in SREVAL_ZOO (separated by the OS path separator), else the user zoo in
    the data home. It sits beside the results database rather than in the cache: models are results, and
    clearing the cache must not delete them."""
    folders = [Path(p).expanduser() for p in os.environ.get("SREVAL_ZOO", "").split(os.pathsep) if p]
    return folders or [_data_home() / "zoo"]


def training_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding training sets by name, e.g. T91/, DIV2K/ (explicit, then SREVAL_TRAINING_ROOT)."""
    return _resolve(explicit, "SREVAL_TRAINING_ROOT", _data_home() / "training")


def study_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding study folders (explicit, then SREVAL_STUDIES)."""
    return _resolve(explicit, "SREVAL_STUDIES", _data_home() / "studies")


def torch_home() -> Path:
    """PyTorch's own cache folder (`$TORCH_HOME`, default `$XDG_CACHE_HOME/torch`), where torchvision keeps the
    checkpoints it downloads (`hub/checkpoints/`); sreval only reads from it."""
    return Path(os.environ.get("TORCH_HOME") or _cache_home() / "torch")

"""Where sreval keeps things: data root, cache, results database, zoo, training sets, studies, model files, and
the torch hub cache it reads checkpoints from. One function per setting.

Each setting is resolved the same way: an explicit value (a command-line flag) first, then an environment
variable, then the user's config file (`$XDG_CONFIG_HOME/sreval/config.toml`, written by `sreval config set`),
then a default under the user's XDG folders. `_xdg` is the only place that knows the XDG fallbacks.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sreval.errors import SrevalError
from sreval.fileutil import atomic_open


@dataclass(frozen=True)
class Setting:
    """A setting the user can keep: its key in the config file, its environment variable, the flag of the
    commands that take it (if any), and what kind of value it holds."""

    key: str
    env: str
    flag: str | None
    kind: Literal["folder", "folders", "url"]
    what: str


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting("data-root", "SREVAL_DATA_ROOT", "--data-root", "folder", "benchmark sets (Set5/HR, Set14/HR, ...)"),
        Setting("training-root", "SREVAL_TRAINING_ROOT", None, "folder", "training sets by name (T91/, DIV2K/, ...)"),
        Setting("assets-dir", "SREVAL_ASSETS_DIR", None, "folder", "model files sreval installs"),
        Setting("db", "SREVAL_DB", "--db", "url", "results and study database (SQLAlchemy URL)"),
        Setting("cache", "SREVAL_CACHE", "--cache-dir", "folder", "SR image and metric cache"),
        Setting("studies", "SREVAL_STUDIES", None, "folder", "MOS study folders"),
        Setting("zoo", "SREVAL_ZOO", None, "folders", f"user model zoo folders ('{os.pathsep}'-separated)"),
    )
}

Source = Literal["flag", "environment", "config file", "default"]


@dataclass(frozen=True)
class Resolved:
    """A setting's value and where it came from (`detail`: the variable or the file)."""

    setting: Setting
    value: str
    source: Source
    detail: str = ""


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def _data_home() -> Path:
    """sreval's folder in the user's data home: `$XDG_DATA_HOME/sreval`, default `~/.local/share/sreval`."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "sreval"


def _cache_home() -> Path:
    """The user's cache home: `$XDG_CACHE_HOME`, default `~/.cache`."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def config_file() -> Path:
    """The user's config file: `$XDG_CONFIG_HOME/sreval/config.toml`, default `~/.config/sreval/config.toml`."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "sreval" / "config.toml"


def how_to_set(key: str) -> str:
    """How the user sets `key`, for messages: "--data-root, SREVAL_DATA_ROOT or `sreval config set data-root`"."""
    s = SETTINGS[key]
    ways = [w for w in (s.flag, s.env) if w]
    return f"{', '.join(ways)} or `sreval config set {s.key} VALUE`"


def _setting(key: str) -> Setting:
    if key not in SETTINGS:
        raise SrevalError(f"unknown setting {key!r}; the settings are: {', '.join(SETTINGS)}")
    return SETTINGS[key]


# --- The config file --------------------------------------------------------------------------------------


def read_config() -> dict[str, str]:
    """The settings in the user's config file (none when there is no file); a broken file is one error naming it."""
    path = config_file()
    try:
        with path.open("rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SrevalError(f"cannot read the config file {path}: {exc}; correct or delete it") from exc
    values: dict[str, str] = {}
    for key, value in table.items():
        if key not in SETTINGS:
            raise SrevalError(
                f"config file {path}: unknown setting {key!r} (the settings are: {', '.join(SETTINGS)}); correct or "
                "delete it"
            )
        if not isinstance(value, str) or not value:
            raise SrevalError(f"config file {path}: {key} must be a non-empty string, got {value!r}")
        values[key] = value
    return values


def checked_value(key: str, value: str) -> str:
    """`value` as the config file keeps it: folders made absolute (the file is read from any working folder), a
    database URL checked to be one. A bad value is one error naming the setting."""
    setting = _setting(key)
    if not value.strip():
        raise SrevalError(f"{key} must not be empty")
    if setting.kind == "url":
        if "://" not in value:
            raise SrevalError(
                f"db must be a database URL such as sqlite:////home/me/results.sqlite or "
                f"postgresql+psycopg2://user@host/db, got {value!r}"
            )
        return value
    folders = [p for p in value.split(os.pathsep) if p] if setting.kind == "folders" else [value]
    absolute = [os.path.abspath(Path(p).expanduser()) for p in folders]
    for path in absolute:
        if Path(path).exists() and not Path(path).is_dir():
            raise SrevalError(f"{key} must be a folder, but {path} is a file")
    return os.pathsep.join(absolute)


def _toml_string(text: str) -> str:
    escaped = "".join(
        "\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text
    )
    return f'"{escaped}"'


def _write_config(values: dict[str, str]) -> Path:
    path = config_file()
    lines = ["# sreval settings, written by `sreval config set` (see `sreval config show`)"]
    lines += [f"{key} = {_toml_string(values[key])}" for key in SETTINGS if key in values]
    with atomic_open(path, encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    path.chmod(0o600)  # a database URL may hold a password
    return path


def set_config(key: str, value: str) -> tuple[Path, str]:
    """Keep `key` = `value` in the config file (written whole, atomically); returns the file and the value kept."""
    kept = checked_value(key, value)
    values = read_config()
    values[key] = kept
    return _write_config(values), kept


def unset_config(key: str) -> tuple[Path, bool]:
    """Remove `key` from the config file; returns the file and whether it was there."""
    _setting(key)
    values = read_config()
    if key not in values:
        return config_file(), False
    del values[key]
    return _write_config(values), True


# --- Resolution -------------------------------------------------------------------------------------------


def _defaults() -> dict[str, str]:
    return {
        "data-root": str(_data_home() / "datasets"),
        "training-root": str(_data_home() / "training"),
        "assets-dir": str(_cache_home() / "sreval" / "assets"),
        "db": f"sqlite:///{_data_home() / 'results.sqlite'}",
        "cache": str(_cache_home() / "sreval"),
        "studies": str(_data_home() / "studies"),
        "zoo": str(_data_home() / "zoo"),
    }


def resolve(key: str, explicit: str | os.PathLike[str] | None = None) -> Resolved:
    """The value of setting `key` and its source: `explicit` (a flag), the environment, the config file, the
    default, in that order."""
    setting = _setting(key)
    if explicit:
        return Resolved(setting, str(explicit), "flag", setting.flag or "")
    if value := os.environ.get(setting.env):
        return Resolved(setting, value, "environment", setting.env)
    if key in (config := read_config()):
        return Resolved(setting, config[key], "config file", str(config_file()))
    if key == "assets-dir":  # beside the cache, wherever the cache was put
        return Resolved(setting, str(cache_dir() / "assets"), "default")
    return Resolved(setting, _defaults()[key], "default")


def resolve_all(explicit: dict[str, str | None] | None = None) -> list[Resolved]:
    """Every setting with its value and source (`explicit`: values given as flags, by key)."""
    given = explicit or {}
    return [resolve(key, given.get(key)) for key in SETTINGS]


def _path(key: str, explicit: str | os.PathLike[str] | None) -> Path:
    return Path(resolve(key, explicit).value).expanduser()


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding Set5/HR, Set14/HR, ... (`--data-root`, SREVAL_DATA_ROOT, config, then the download folder)."""
    return _path("data-root", explicit)


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Content-addressed cache of SR images and metric values (`--cache-dir`, SREVAL_CACHE, config)."""
    return _path("cache", explicit)


def assets_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where sreval installs the model files it downloads or is given (explicit, SREVAL_ASSETS_DIR, config, then
    `assets/` in the cache folder)."""
    return _path("assets-dir", explicit)


def db_url(explicit: str | None = None) -> str:
    """Results database as an SQLAlchemy URL (`--db`, SREVAL_DB, config, then an SQLite file in the data home)."""
    return resolve("db", explicit).value


def zoo_dirs() -> list[Path]:
    """The user's zoo roots: the folders in SREVAL_ZOO (or the config's `zoo`; separated by the OS path
    separator), else the user zoo in the data home. It sits beside the results database rather than in the cache:
    models are results, and clearing the cache must not delete them."""
    folders = [Path(p).expanduser() for p in resolve("zoo").value.split(os.pathsep) if p]
    return folders or [_data_home() / "zoo"]


def training_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding training sets by name, e.g. T91/, DIV2K/ (explicit, SREVAL_TRAINING_ROOT, config)."""
    return _path("training-root", explicit)


def study_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding study folders (explicit, SREVAL_STUDIES, config)."""
    return _path("studies", explicit)


def torch_home() -> Path:
    """PyTorch's own cache folder (`$TORCH_HOME`, default `$XDG_CACHE_HOME/torch`), where torchvision keeps the
    checkpoints it downloads (`hub/checkpoints/`); sreval only reads from it."""
    return Path(os.environ.get("TORCH_HOME") or _cache_home() / "torch")

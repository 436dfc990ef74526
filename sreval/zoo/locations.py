"""Where zoo entries are: the roots searched, the root new entries go to, and finding entries in them.

Roots, searched in this order (the first entry of a name wins):

1. the roots given explicitly (`extra` of `zoo_roots`);
2. the user's zoo, `sreval.settings.zoo_dirs()`: the folders in `SREVAL_ZOO`, else `$XDG_DATA_HOME/sreval/zoo`;
3. the built-in entries, `builtin_dir()`, shipped inside the package.

Models that sreval writes go to the first folder of (2) unless a root is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from sreval import settings
from sreval.errors import ParameterError, SrevalError
from sreval.zoo.entry import CONFIG, ZooEntry, check_name, read_entry


def builtin_dir() -> Path:
    """The built-in entries (configs, model cards, and the weights of the models sreval trained itself; never
    third-party weights), as package data of `sreval.zoo`.

    In a source checkout this folder is a link to the repository's `models/`, which is the copy that is edited;
    a wheel carries the files themselves (see `[tool.setuptools.package-data]` in pyproject.toml)."""
    return Path(__file__).resolve().parent / "builtin"


def zoo_roots(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """Every root searched, in order: `extra` first, then the user's zoo, then the built-in entries."""
    roots = [Path(p).expanduser() for p in extra] + settings.zoo_dirs() + [builtin_dir()]
    unique: list[Path] = []
    for root in roots:
        if all(root.resolve() != seen.resolve() for seen in unique):
            unique.append(root)
    return unique


def write_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Root that new models go to: `explicit`, else the first folder of the user's zoo."""
    if explicit:
        return Path(explicit).expanduser()
    return settings.zoo_dirs()[0]


def scan(roots: Sequence[Path] | None = None) -> tuple[list[ZooEntry], list[str]]:
    """Every entry under `roots` (default `zoo_roots()`), first of a name winning, and one message per folder
    whose config is invalid."""
    entries: dict[str, ZooEntry] = {}
    problems: list[str] = []
    for root in zoo_roots() if roots is None else roots:
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir()):
            if folder.name in entries or not (folder / CONFIG).is_file():
                continue
            try:
                entries[folder.name] = read_entry(folder)
            except SrevalError as e:
                problems.append(str(e))
    return sorted(entries.values(), key=lambda e: e.name), problems


def list_models(roots: Sequence[Path] | None = None) -> list[ZooEntry]:
    """All entries, by name; an invalid config is an error naming its file."""
    entries, problems = scan(roots)
    if problems:
        raise SrevalError("; ".join(problems))
    return entries


def get_entry(name: str, roots: Sequence[Path] | None = None) -> ZooEntry:
    """The entry `name` from the first root that has it."""
    check_name(name)
    searched = zoo_roots() if roots is None else list(roots)
    for root in searched:
        if (root / name / CONFIG).is_file():
            return read_entry(root / name)
    known = [e.name for e in scan(searched)[0]]
    raise ParameterError(
        "name",
        f"unknown zoo model {name!r}; known: {', '.join(known) or '(none)'} "
        f"(searched {', '.join(map(str, searched))})",
    )


def resolve_entry(model: str | ZooEntry, roots: Sequence[Path] | None = None) -> ZooEntry:
    """`model` itself if it is an entry, else the entry of that name."""
    return model if isinstance(model, ZooEntry) else get_entry(model, roots)


def check_free(name: str, root: Path, overwrite: bool) -> None:
    """A new name must not collide with, or silently shadow, an entry in any searched root."""
    if overwrite:
        return
    for other in [root, *zoo_roots()]:
        if (other / name / CONFIG).is_file():
            raise ParameterError(
                "name", f"zoo model {name!r} already exists at {other / name}; choose another name or overwrite"
            )

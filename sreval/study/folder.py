"""The folder of a study: rendered beside its target, given private modes and one common time, moved into place,
and what a killed `study create` leaves behind recognised and removed.

Nothing about the folder tells which file shows which method either: the stimuli are rendered in a random order
(so file creation order, inode numbers and the listing order are shuffled too), and once all are written every file
gets the same access and modification time (the moment the folder was finished) and its mode, in the order of the
random file names. The order comes from a fresh random source, not from the study's seed: the seed is printed and
stored with the study, and anyone holding it could redo a seeded order; nothing needs this order to be
reproducible (the file names are not either). What cannot be hidden are the contents and sizes of the files.

The folder is private (0700, files 0600) unless `group_read` asks for 0750 and 0640, for a
rater app that runs as another user of the folder's group. The rater app must be able to read it: run it as the
user who ran `study create`, or use `group_read`.

The files are rendered into a hidden folder beside the target (`.NAME.partial-…`, on the same file system), which
is renamed into place only when it is complete; only then is the study stored, in one transaction. If anything
fails, the folder is removed again, so a failed `create` leaves neither files nor rows. A `create` killed outright
(kill -9, a power cut) cannot clean up, so it leaves nothing that blocks running the same command again: a
partial folder is locked (`flock`) while its `create` runs and the next `create` of the same study removes it once
the lock is free; and between the rename and the database row the folder holds a marker naming the study and the
database, so the next `create` of that study in that database recognises the folder as unfinished and renders it
anew.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sys
from pathlib import Path

from sreval.errors import SrevalError

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

#: Modes of a study folder and of its files: private by default, or readable by the folder's group.
PRIVATE_MODES = (0o700, 0o600)
GROUP_READ_MODES = (0o750, 0o640)
#: Infix of the hidden folder a study is rendered into (`.NAME.partial-RANDOM`, beside the study folder).
PARTIAL_INFIX = ".partial-"
#: File in a rendered study folder until its database row is written: {"study": NAME, "database": URL}.
UNFINISHED_MARKER = ".sreval-unfinished.json"


def lock_folder(folder: Path) -> int | None:
    """An open descriptor of `folder` holding an exclusive `flock` on it, or None where there are no such locks.

    `BlockingIOError` when another process holds the lock. The lock goes with the process, however it ends.
    """
    if sys.platform == "win32":
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_if_abandoned(folder: Path) -> bool:
    """Remove `folder` if no running process holds its lock; False if one does (or locks cannot tell)."""
    try:
        lock = lock_folder(folder)
    except OSError:
        return False
    if lock is None:
        return False
    try:
        shutil.rmtree(folder)
    finally:
        os.close(lock)
    return True


def clear_target(target: Path, name: str, database: str) -> None:
    """Refuse a study folder that exists and is not empty, unless a killed `create` of this study in this database
    left it (it still holds the unfinished marker): that one is removed, to be rendered again."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return
    marker = target / UNFINISHED_MARKER
    if not target.is_dir() or not marker.is_file():
        raise SrevalError(f"study folder {target} already exists and is not empty; choose another folder or name")
    try:
        left = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        left = {}
    if left != {"study": name, "database": database}:
        raise SrevalError(
            f"study folder {target} is an unfinished study ({marker.name}: {left or 'unreadable'}), not one of "
            f"study {name!r} in {database}; remove the folder, or choose another folder or name"
        )
    if not remove_if_abandoned(target):
        raise SrevalError(
            f"study folder {target} is being created by another process (or cannot be locked to check); wait for "
            "it, or remove the folder"
        )
    log.info("removed %s, left unfinished by an interrupted create of study %s", target, name)


def remove_stale_partials(target: Path) -> None:
    """Remove the partial folders of `target` that no running `create` holds (left by a killed one)."""
    for path in target.parent.glob(f".{target.name}{PARTIAL_INFIX}*"):
        if path.is_dir() and not path.is_symlink() and remove_if_abandoned(path):
            log.info("removed %s, left by an interrupted create", path)


def new_partial(target: Path) -> tuple[Path, int | None]:
    """A new private, locked folder beside `target` to render into."""
    while True:
        partial = target.with_name(f".{target.name}{PARTIAL_INFIX}{secrets.token_hex(6)}")
        try:
            partial.mkdir(mode=0o700)
        except FileExistsError:
            continue
        break
    try:
        os.chmod(partial, 0o700)  # whatever the umask
        return partial, lock_folder(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def finish_folder(folder: Path, files: list[str], modes: tuple[int, int], stamp: int, marker: dict[str, str]) -> None:
    """Give every file its mode and the common time `stamp` (ns), in file name order (random), so change times
    follow the random names only; then leave the unfinished marker and set the folder's own mode and times."""
    folder_mode, file_mode = modes
    for file in sorted(files):
        path = folder / file
        os.chmod(path, file_mode)
        os.utime(path, ns=(stamp, stamp))
    with open(folder / UNFINISHED_MARKER, "x", encoding="utf-8") as f:
        json.dump(marker, f)
    os.chmod(folder / UNFINISHED_MARKER, file_mode)
    os.chmod(folder, folder_mode)
    os.utime(folder, ns=(stamp, stamp))


def move_into_place(partial: Path, target: Path) -> None:
    """Rename the finished folder to `target` (absent, or an empty folder it replaces) and make that durable
    before the database row refers to it."""
    try:
        os.replace(partial, target)
    except OSError as error:
        raise SrevalError(
            f"cannot move the finished study folder {partial} to {target}: {error.strerror or error}; the study "
            "folder must be one that does not exist or is empty, not a mount point"
        ) from error
    if sys.platform != "win32":
        try:
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:  # some file systems cannot sync a folder; the rename is done all the same
            pass

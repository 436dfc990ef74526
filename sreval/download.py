"""Verified HTTP(S) downloads: the one place sreval fetches a file (model assets and benchmark sets).

`fetch(urls, target, pins)` tries each URL (mirror) in order and streams into `<target>.part` beside the target.
A `.part` left by an interrupted run is resumed with a Range request when the server answers 206 (and started
over otherwise). The finished file must have the pinned size and hashes (SHA-256, full or a prefix, and/or the Git
blob id) before it is renamed to the target, so the target name never holds a partial or unverified file.
`SREVAL_OFFLINE=1` refuses before any connection is made.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sreval.errors import ParameterError, SrevalError
from sreval.progress import Progress, binary_size

if sys.platform != "win32":
    import fcntl

#: Seconds without a byte from the server before a download is given up (a stalled server, not a slow one).
TIMEOUT_S = 30.0
_CHUNK = 1 << 16


def offline() -> bool:
    """True when SREVAL_OFFLINE=1: nothing may be downloaded."""
    return os.environ.get("SREVAL_OFFLINE") == "1"


def human_size(n: int | None) -> str:
    return "size unknown" if n is None else binary_size(n, "bytes")


@dataclass(frozen=True)
class Pins:
    """What a file must be: exact size, SHA-256 (full or a hex prefix) and/or Git blob id; None = not pinned."""

    size: int | None = None
    sha256: str | None = None
    git_blob: str | None = None

    @property
    def hashed(self) -> bool:
        """Whether the content itself is pinned (a size alone does not identify a file)."""
        return bool(self.sha256 or self.git_blob)


@dataclass(frozen=True)
class Hashes:
    size: int
    sha256: str
    git_blob: str


def hashes_of(path: Path) -> Hashes:
    """Size, SHA-256 and Git blob id (`sha1(b"blob <size>\\0" + content)`) of a file, in one read."""
    size = path.stat().st_size
    sha256, blob = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha256.update(chunk)
            blob.update(chunk)
    return Hashes(size, sha256.hexdigest(), blob.hexdigest())


def mismatch(found: Hashes, pins: Pins) -> str | None:
    """None if `found` satisfies every pin, else what differs (`sha256 X, expected Y`)."""
    if pins.size is not None and found.size != pins.size:
        return f"{found.size} bytes, expected {pins.size}"
    if pins.sha256 and not found.sha256.startswith(pins.sha256.lower()):
        return f"sha256 {found.sha256}, expected {pins.sha256}"
    if pins.git_blob and found.git_blob != pins.git_blob.lower():
        return f"git blob {found.git_blob}, expected {pins.git_blob}"
    return None


class DownloadError(SrevalError):
    """One failed download; `kind` says what went wrong (offline, unreachable, http, timeout, dropped, hash,
    disk, busy, redirect) so that callers can add their own advice; `failures` holds each mirror's error."""

    def __init__(self, kind: str, message: str, failures: Sequence[DownloadError] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.failures = list(failures) or [self]


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        if not newurl.lower().startswith(("http://", "https://")):
            raise DownloadError(
                "redirect", f"download of {req.full_url} failed: redirection to {newurl} is not allowed (http(s) only)"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_HttpOnlyRedirects)


class _StartOver(Exception):
    """The server cannot continue the `.part` (416, or a Content-Range for other bytes): fetch it whole."""


def fetch(
    urls: Sequence[str],
    target: Path,
    pins: Pins,
    *,
    timeout: float = TIMEOUT_S,
    desc: str | None = None,
    show_progress: bool = True,
) -> Path:
    """Download `target` from the first of `urls` that delivers a file matching `pins`; returns `target`."""
    if not urls:
        raise ParameterError("urls", "urls must name at least one http(s) URL, got none")
    for url in urls:
        if not url.lower().startswith(("http://", "https://")):
            raise ParameterError("urls", f"urls must be http(s) URLs, got {url!r}")
    if offline():
        raise DownloadError(
            "offline",
            f"SREVAL_OFFLINE=1: not downloading {target.name} from {urls[0]} (unset SREVAL_OFFLINE to allow it)",
        )
    part = target.with_name(target.name + ".part")
    failures: list[DownloadError] = []
    for url in urls:
        try:
            try:
                _attempt(url, part, target, pins, timeout, desc or target.name, show_progress, resume=True)
            except _StartOver:
                _attempt(url, part, target, pins, timeout, desc or target.name, show_progress, resume=False)
            return target
        except DownloadError as e:
            if e.kind in ("disk", "busy"):  # another mirror needs the same space, or the same `.part`
                raise
            failures.append(e)
    if len(failures) == 1:
        raise failures[0]
    listed = "; ".join(f"[{i}] {e}" for i, e in enumerate(failures, 1))
    raise DownloadError(failures[-1].kind, f"all {len(urls)} mirrors failed for {target.name}: {listed}", failures)


def _install(url: str, part: Path, target: Path, pins: Pins) -> None:
    wrong = mismatch(hashes_of(part), pins)
    if wrong is not None:
        part.unlink(missing_ok=True)
        raise DownloadError(
            "hash", f"download of {url} has {wrong}: the mirror changed or the file was corrupted; nothing installed"
        )
    os.replace(part, target)


def _attempt(
    url: str, part: Path, target: Path, pins: Pins, timeout: float, desc: str, show_progress: bool, *, resume: bool
) -> None:
    have = part.stat().st_size if resume and part.is_file() else 0
    if pins.size is not None and have > pins.size:
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "sreval"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = _opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            raise _StartOver from None
        raise DownloadError("http", f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _network_error(url, e.reason, timeout) from None
    except (OSError, http.client.HTTPException) as e:
        raise _network_error(url, e, timeout) from None
    with response:
        if have and response.status == 206:
            if not str(response.headers.get("Content-Range", "")).startswith(f"bytes {have}-"):
                raise _StartOver
        else:
            have = 0  # the server sends the whole file: start the `.part` over
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None and length.isdigit() else pins.size
        if pins.size is not None and expected != pins.size:  # refused before a byte of it is written
            raise DownloadError(
                "hash",
                f"download of {url} has {expected} bytes, expected {pins.size}: not the pinned file; nothing installed",
            )
        got = have
        part.parent.mkdir(parents=True, exist_ok=True)
        with (
            # Append mode, so that opening never truncates a `.part` another process is writing (the lock says);
            # unbuffered, so that a full disk fails in `write`, never later in `close`.
            open(part, "ab", buffering=0) as f,
            Progress(expected, desc, "B", initial=have, enabled=show_progress) as bar,
        ):
            _lock(f, url, part)
            if f.seek(0, os.SEEK_END) != have:
                if have:  # changed since it was measured: the Range asked for the wrong bytes
                    raise _StartOver
                f.truncate(0)
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _cut_off(url, part, got, expected, e, timeout) from None
                if not chunk:
                    break
                _write(f, chunk, url, part, expected)
                got += len(chunk)
                bar.update(len(chunk))
            if expected is not None and got < expected:
                raise _cut_off(url, part, got, expected, None, timeout)
            _install(url, part, target, pins)  # still under the lock: nobody writes between the hash and the rename


def _lock(f: IO[bytes], url: str, part: Path) -> None:
    """Hold the `.part` exclusively: two processes fetching one file would interleave their bytes."""
    if sys.platform == "win32":
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DownloadError(
            "busy", f"not downloading {url}: another process is downloading into {part}; wait for it and run again"
        ) from None


def _write(f: IO[bytes], chunk: bytes, url: str, part: Path, expected: int | None) -> None:
    view = memoryview(chunk)
    try:
        while view:
            view = view[f.write(view) :]
    except OSError as e:
        raise _write_error(e, url, part, expected) from None


def _write_error(e: OSError, url: str, part: Path, expected: int | None) -> DownloadError:
    part.unlink(missing_ok=True)
    if e.errno != errno.ENOSPC:
        return DownloadError("disk", f"cannot write {part} while downloading {url}: {e}; removed it")
    free = shutil.disk_usage(part.parent).free
    needed = human_size(expected) if expected is not None else "an unknown amount (the server did not say)"
    return DownloadError(
        "disk",
        f"disk full while downloading {url}: it needs {needed} in {part.parent}, {human_size(free)} free there; "
        f"removed the partial {part.name}. Free some space (or point the download elsewhere) and run again",
    )


def _network_error(url: str, reason: object, timeout: float) -> DownloadError:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return DownloadError("timeout", f"download of {url} timed out: no answer within {timeout:g} s (server down?)")
    return DownloadError("unreachable", f"cannot reach {url} ({reason}); no network?")


def _cut_off(
    url: str, part: Path, got: int, expected: int | None, error: BaseException | None, timeout: float
) -> DownloadError:
    of = f" of {expected}" if expected is not None else ""
    if isinstance(error, (TimeoutError, socket.timeout)):
        why, kind = f"timed out (no data for {timeout:g} s: a slow or stalled server)", "timeout"
    else:
        why, kind = f"connection dropped ({type(error).__name__ if error else 'closed early'})", "dropped"
    return DownloadError(
        kind,
        f"download of {url} broke off after {got}{of} bytes: {why}; the bytes so far are kept in {part}: "
        "run again to resume",
    )

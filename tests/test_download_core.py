"""`sreval.download.fetch` against a local server: verified, atomic, resumable, with one clear error per failure."""

from __future__ import annotations

import errno
import hashlib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_server import Seen, Server, allow_downloads, serve

if sys.platform != "win32":
    import fcntl

import sreval.download as dl
from sreval.download import DownloadError, Pins, fetch, hashes_of, mismatch
from sreval.errors import ParameterError

DATA = bytes(range(256)) * 1000  # 256 000 bytes
SHA = hashlib.sha256(DATA).hexdigest()
BLOB = hashlib.sha1(b"blob %d\0" % len(DATA) + DATA).hexdigest()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    allow_downloads(monkeypatch)
    with serve(tmp_path / "served") as state:
        state.put("/f.bin", DATA)
        yield state


@pytest.fixture
def target(tmp_path: Path) -> Path:
    return tmp_path / "out" / "f.bin"


def _part(target: Path) -> Path:
    return target.with_name("f.bin.part")


def _contents(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_git_blob_is_what_git_hash_object_gives(tmp_path: Path) -> None:
    path = tmp_path / "hello"
    path.write_bytes(b"hello\n")
    assert hashes_of(path).git_blob == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of it


def test_mismatch_checks_every_pin() -> None:
    found = dl.Hashes(len(DATA), SHA, BLOB)
    assert mismatch(found, Pins(len(DATA), SHA, BLOB)) is None
    assert mismatch(found, Pins(sha256=SHA[:8].upper())) is None
    assert mismatch(found, Pins(size=len(DATA) + 1)) == f"{len(DATA)} bytes, expected {len(DATA) + 1}"
    assert mismatch(found, Pins(sha256="0" * 8)) == f"sha256 {SHA}, expected 00000000"
    assert mismatch(found, Pins(sha256=SHA, git_blob="1" * 40)) == f"git blob {BLOB}, expected {'1' * 40}"


def test_fetch_verifies_and_installs(server: Server, target: Path) -> None:
    assert fetch([server.url + "/f.bin"], target, Pins(len(DATA), SHA, BLOB), show_progress=False) == target
    assert target.read_bytes() == DATA
    assert _contents(target.parent) == ["f.bin"]
    assert server.requests == [Seen("/f.bin", None)]


def test_git_blob_only_pin(server: Server, target: Path) -> None:
    fetch([server.url + "/f.bin"], target, Pins(git_blob=BLOB), show_progress=False)
    assert target.read_bytes() == DATA
    with pytest.raises(DownloadError, match=f"git blob {BLOB}, expected {'2' * 40}"):
        fetch([server.url + "/f.bin"], target.with_name("g.bin"), Pins(git_blob="2" * 40), show_progress=False)
    assert not target.with_name("g.bin").exists() and not target.with_name("g.bin.part").exists()


def test_wrong_hash_installs_nothing(server: Server, target: Path) -> None:
    url = server.url + "/f.bin"
    with pytest.raises(DownloadError) as caught:
        fetch([url], target, Pins(sha256="ab" * 32), show_progress=False)
    message = str(caught.value)
    assert url in message and f"sha256 {SHA}, expected {'ab' * 32}" in message and "nothing installed" in message
    assert caught.value.kind == "hash"
    assert _contents(target.parent) == []


def test_wrong_size_is_refused_before_it_is_written(server: Server, target: Path) -> None:
    with pytest.raises(DownloadError, match=f"has {len(DATA)} bytes, expected {len(DATA) - 1}: not the pinned"):
        fetch([server.url + "/f.bin"], target, Pins(len(DATA) - 1, SHA), show_progress=False)
    assert not target.parent.exists()


def test_http_404_names_the_url(server: Server, target: Path) -> None:
    url = server.url + "/nothing.bin"
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        fetch([url], target, Pins(sha256=SHA), show_progress=False)
    assert url in str(caught.value) and caught.value.kind == "http"
    assert _contents(target.parent) == []


def test_dropped_connection_keeps_the_part_and_resumes_with_range(server: Server, target: Path) -> None:
    url = server.url + "/f.bin"
    server.drops["/f.bin"] = 100_000
    with pytest.raises(DownloadError) as caught:
        fetch([url], target, Pins(len(DATA), SHA), show_progress=False)
    message = str(caught.value)
    assert caught.value.kind == "dropped"
    assert url in message and f"after 100000 of {len(DATA)} bytes" in message and "run again to resume" in message
    assert not target.exists() and _part(target).read_bytes() == DATA[:100_000]

    fetch([url], target, Pins(len(DATA), SHA), show_progress=False)
    assert server.requests[-1] == Seen("/f.bin", "bytes=100000-")
    assert target.read_bytes() == DATA and not _part(target).exists()


def test_server_without_range_support_restarts_cleanly(server: Server, target: Path) -> None:
    _part(target).parent.mkdir(parents=True)
    _part(target).write_bytes(DATA[:5000])
    server.ignore_range = True
    fetch([server.url + "/f.bin"], target, Pins(sha256=SHA), show_progress=False)
    assert server.requests == [Seen("/f.bin", "bytes=5000-")]
    assert target.read_bytes() == DATA and not _part(target).exists()


def test_complete_part_answered_416_is_fetched_again(server: Server, target: Path) -> None:
    _part(target).parent.mkdir(parents=True)
    _part(target).write_bytes(DATA)  # e.g. killed between the last byte and the rename
    fetch([server.url + "/f.bin"], target, Pins(sha256=SHA), show_progress=False)
    assert server.requests == [Seen("/f.bin", f"bytes={len(DATA)}-"), Seen("/f.bin", None)]
    assert target.read_bytes() == DATA


def test_stalled_server_times_out(server: Server, target: Path) -> None:
    server.stalls.add("/f.bin")
    start = time.monotonic()
    with pytest.raises(DownloadError, match="timed out") as caught:
        fetch([server.url + "/f.bin"], target, Pins(sha256=SHA), timeout=0.3, show_progress=False)
    assert time.monotonic() - start < 5
    assert server.url + "/f.bin" in str(caught.value) and caught.value.kind == "timeout"
    assert not target.exists()


def test_redirect_is_followed(server: Server, target: Path) -> None:
    server.redirects["/old.bin"] = server.url + "/f.bin"
    fetch([server.url + "/old.bin"], target, Pins(sha256=SHA), show_progress=False)
    assert server.paths == ["/old.bin", "/f.bin"]
    assert target.read_bytes() == DATA


@pytest.mark.parametrize("elsewhere", ["file:///etc/passwd", "ftp://127.0.0.1/f.bin"])
def test_redirect_to_another_scheme_is_refused(server: Server, target: Path, elsewhere: str) -> None:
    server.redirects["/old.bin"] = elsewhere
    with pytest.raises(DownloadError, match=f"{server.url}/old.bin failed: .*{elsewhere}.* is not allowed"):
        fetch([server.url + "/old.bin"], target, Pins(sha256=SHA), show_progress=False)
    assert _contents(target.parent) == []


def test_second_mirror_is_used_when_the_first_404s(server: Server, target: Path) -> None:
    fetch([server.url + "/gone.bin", server.url + "/f.bin"], target, Pins(sha256=SHA), show_progress=False)
    assert server.paths == ["/gone.bin", "/f.bin"]
    assert target.read_bytes() == DATA


def test_all_mirrors_failing_lists_each_failure(server: Server, target: Path) -> None:
    urls = [server.url + "/gone.bin", server.url + "/f.bin"]
    with pytest.raises(DownloadError) as caught:
        fetch(urls, target, Pins(sha256="cd" * 32), show_progress=False)
    message = str(caught.value)
    assert message.startswith("all 2 mirrors failed for f.bin: [1] download of " + urls[0])
    assert "HTTP 404" in message and f"[2] download of {urls[1]} has sha256 {SHA}" in message
    assert [e.kind for e in caught.value.failures] == ["http", "hash"]


class _FullDisk:
    """A file that takes 50 000 bytes, then fails as a full disk does."""

    def __init__(self, real: Any) -> None:
        self.real, self.written = real, 0

    def write(self, data: memoryview) -> int:
        if self.written + len(data) > 50_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return int(self.real.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.real.close()


def test_disk_full_says_how_much_where_and_removes_the_part(
    server: Server, target: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl, "open", lambda *a, **k: _FullDisk(open(*a, **k)), raising=False)  # noqa: SIM115
    url = server.url + "/f.bin"
    with pytest.raises(DownloadError) as caught:
        fetch([url, url], target, Pins(len(DATA), SHA), show_progress=False)
    message = str(caught.value)
    assert message.startswith(f"disk full while downloading {url}: it needs 250.0 KiB in {target.parent}")
    assert caught.value.kind == "disk"
    assert len(server.requests) == 1, "another mirror needs the same space: not tried"
    assert _contents(target.parent) == []


@pytest.mark.skipif(sys.platform == "win32", reason="flock")
def test_a_part_another_process_is_writing_is_left_alone(server: Server, target: Path) -> None:
    part = _part(target)
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:1000])
    with part.open("ab") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        with pytest.raises(DownloadError, match=f"another process is downloading into {part}") as caught:
            fetch([server.url + "/f.bin", server.url + "/f.bin"], target, Pins(sha256=SHA), show_progress=False)
    assert caught.value.kind == "busy" and len(server.requests) == 1
    assert part.read_bytes() == DATA[:1000] and not target.exists()


def test_offline_refuses_before_any_request(server: Server, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SREVAL_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"SREVAL_OFFLINE=1: not downloading f\.bin from http://127") as caught:
        fetch([server.url + "/f.bin"], target, Pins(sha256=SHA), show_progress=False)
    assert caught.value.kind == "offline"
    assert server.requests == []
    assert not target.parent.exists()


def test_unreachable_host_fails_fast(target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allow_downloads(monkeypatch)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(DownloadError, match=f"cannot reach http://127.0.0.1:{port}/f.bin .*no network"):
        fetch([f"http://127.0.0.1:{port}/f.bin"], target, Pins(sha256=SHA), show_progress=False)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("urls", [[], ["ftp://example.org/f.bin"], ["/tmp/f.bin"]])
def test_urls_must_be_http(urls: list[str], target: Path) -> None:
    with pytest.raises(ParameterError, match="urls must") as caught:
        fetch(urls, target, Pins(sha256=SHA))
    assert caught.value.parameter == "urls"

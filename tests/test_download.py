"""`sreval data download` against a local HTTP mirror: verified, atomic, idempotent, and fast to fail offline."""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sreval.cli import main
from sreval.datasets.download import DEFAULT_MIRROR, download, mirror_url
from sreval.datasets.registry import ImageEntry, get_dataset, verify
from sreval.errors import SrevalError

UNRESOLVABLE = "http://sreval-mirror.invalid"  # .invalid never resolves (RFC 2606)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours *_proxy variables; a proxy on the test machine must not stand between us and 127.0.0.1."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@dataclass
class Mirror:
    """A local HTTP server with SelfExSR's layout; `requests` lists every path asked for."""

    url: str
    folder: Path
    requests: list[str] = field(default_factory=list)

    def file(self, entry: ImageEntry) -> Path:
        folder, _, filename = entry.path.split("/")
        return self.folder / "data" / folder / "image_SRF_4" / filename


class _Handler(SimpleHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(data_root: Path, tmp_path: Path) -> Iterator[Mirror]:
    """Serves a copy of Set5 as `data/Set5/image_SRF_4/img_00N_SRF_4_HR.png` on 127.0.0.1."""
    folder = tmp_path / "mirror"
    result = Mirror(url="", folder=folder)
    for entry in get_dataset("set5").images:
        result.file(entry).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / entry.path, result.file(entry))
    handler = type("Handler", (_Handler,), {"requests": result.requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    result.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield result
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mirror_url_uses_the_selfexsr_layout() -> None:
    entry = get_dataset("bsd100").image("img_042")
    assert mirror_url("http://m.example/base/", entry) == (
        "http://m.example/base/data/BSD100/image_SRF_4/img_042_SRF_4_HR.png"
    )
    assert DEFAULT_MIRROR.startswith("https://") and not DEFAULT_MIRROR.endswith("/")


def test_download_fetches_all_then_nothing(mirror: Mirror, tmp_path: Path) -> None:
    dataset = get_dataset("set5")
    root = tmp_path / "root"
    assert download(dataset, root, mirror=mirror.url) == 5
    assert verify(dataset, root) == []
    assert len(mirror.requests) == 5
    assert sorted(p.name for p in (root / "Set5" / "HR").iterdir()) == [
        f"img_00{i}_SRF_4_HR.png" for i in range(1, 6)
    ]

    seen: list[str] = []
    assert download(dataset, root, mirror=mirror.url, progress=lambda e: seen.append(e.name)) == 0
    assert len(mirror.requests) == 5, "files already present and verified must not be fetched again"
    assert seen == [e.name for e in dataset.images], "progress is reported for every file, fetched or not"


def test_download_replaces_only_a_damaged_file(mirror: Mirror, tmp_path: Path) -> None:
    dataset = get_dataset("set5")
    root = tmp_path / "root"
    download(dataset, root, mirror=mirror.url)
    entry = dataset.image("butterfly")
    (root / entry.path).write_bytes(b"not the image")
    mirror.requests.clear()
    assert download(dataset, root, mirror=mirror.url) == 1
    assert mirror.requests == ["/data/Set5/image_SRF_4/img_003_SRF_4_HR.png"]
    assert verify(dataset, root) == []


def test_corrupted_mirror_file_is_refused_and_not_written(mirror: Mirror, tmp_path: Path) -> None:
    dataset = get_dataset("set5")
    entry = dataset.image("butterfly")
    served = mirror.file(entry)
    data = bytearray(served.read_bytes())
    data[100] ^= 0xFF
    served.write_bytes(bytes(data))
    root = tmp_path / "root"
    with pytest.raises(SrevalError) as caught:
        download(dataset, root, mirror=mirror.url)
    message = str(caught.value)
    assert mirror_url(mirror.url, entry) in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert entry.sha256 in message
    # The files before it were written; nothing at all for the bad one, not even a temporary `.part`.
    assert sorted(p.name for p in (root / "Set5" / "HR").iterdir()) == ["img_001_SRF_4_HR.png", "img_002_SRF_4_HR.png"]


def test_http_404(mirror: Mirror, tmp_path: Path) -> None:
    entry = get_dataset("set5").image("baby")
    mirror.file(entry).unlink()
    with pytest.raises(SrevalError, match="HTTP 404") as caught:
        download(get_dataset("set5"), tmp_path / "root", mirror=mirror.url)
    assert mirror_url(mirror.url, entry) in str(caught.value)
    assert not (tmp_path / "root" / entry.path).exists()


def test_refused_connection_fails_fast(closed_port: int, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(SrevalError, match="no network") as caught:
        download(get_dataset("set5"), tmp_path / "root", mirror=f"http://127.0.0.1:{closed_port}")
    assert time.monotonic() - start < 5
    message = str(caught.value)
    assert f"http://127.0.0.1:{closed_port}/data/Set5/" in message
    assert "SREVAL_DATA_ROOT" in message and "sreval data verify" in message


def test_unresolvable_host_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(SrevalError, match="no network"):
        download(get_dataset("set5"), tmp_path / "root", mirror=UNRESOLVABLE)
    assert time.monotonic() - start < 10
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("bad", ["ftp://x", "/tmp", "", "127.0.0.1:8000", "file:///tmp/mirror"])
def test_non_http_mirror_is_refused(bad: str, tmp_path: Path) -> None:
    with pytest.raises(SrevalError, match="mirror must be an http"):
        download(get_dataset("set5"), tmp_path / "root", mirror=bad)
    assert not (tmp_path / "root").exists()


def test_cli_download_from_local_mirror(mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["data", "download", "--datasets", "set5", "--data-root", str(tmp_path / "root"), "--mirror", mirror.url]
    assert main(args) == 0
    assert "set5: 5 downloaded, 0 already present, all verified" in capsys.readouterr().out
    assert main(args) == 0
    assert "set5: 0 downloaded, 5 already present, all verified" in capsys.readouterr().out


def test_cli_download_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start = time.monotonic()
    code = main(
        ["data", "download", "--datasets", "set5", "--data-root", str(tmp_path / "root"), "--mirror", UNRESOLVABLE]
    )
    assert code == 2
    assert time.monotonic() - start < 10
    out, err = capsys.readouterr()
    assert err.startswith("error: cannot reach http://sreval-mirror.invalid/data/Set5/")
    assert "no network?" in err
    assert "Traceback" not in out + err


# --- misbehaving servers ------------------------------------------------------------------------------------------


class _CutOff(BaseHTTPRequestHandler):
    """Promises 1000 bytes, sends 10, hangs up."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 10)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Stalled(BaseHTTPRequestHandler):
    """Accepts the request and never answers (until the test releases it)."""

    release = threading.Event()

    def do_GET(self) -> None:
        self.release.wait(timeout=10)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_connection_dropped_mid_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """http.client.IncompleteRead is no OSError; it must still become one SrevalError, not a traceback."""
    root = tmp_path / "root"
    with _serve(_CutOff) as url:
        with pytest.raises(SrevalError, match=r"IncompleteRead") as caught:
            download(get_dataset("set5"), root, mirror=url, timeout=5)
        assert f"{url}/data/Set5/image_SRF_4/img_001_SRF_4_HR.png" in str(caught.value)
        assert not (root / "Set5" / "HR").exists()
        args = ["data", "download", "--datasets", "set5", "--data-root", str(root), "--mirror", url]
        assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: download of ") and "Traceback" not in err


def test_stalled_server_times_out(tmp_path: Path) -> None:
    _Stalled.release.clear()
    with _serve(_Stalled) as url:
        start = time.monotonic()
        try:
            with pytest.raises(SrevalError, match="timed out"):
                download(get_dataset("set5"), tmp_path / "root", mirror=url, timeout=0.5)
            assert time.monotonic() - start < 5
        finally:
            _Stalled.release.set()

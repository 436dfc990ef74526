"""`sreval data download` against a local HTTP mirror: verified, atomic, idempotent, and fast to fail offline."""

from __future__ import annotations

import hashlib
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from http_server import Server, allow_downloads, serve

from sreval.cli import main
from sreval.datasets.download import DEFAULT_MIRROR, download, mirror_url
from sreval.datasets.registry import ImageEntry, get_dataset, verify
from sreval.errors import SrevalError

UNRESOLVABLE = "http://sreval-mirror.invalid"  # .invalid never resolves (RFC 2606)


@pytest.fixture(autouse=True)
def _network_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests download (from 127.0.0.1): no SREVAL_OFFLINE, no proxy between us and the local server."""
    allow_downloads(monkeypatch)


def served(mirror: Server, entry: ImageEntry) -> Path:
    """Where the local mirror keeps `entry`, in SelfExSR's layout."""
    folder, _, filename = entry.path.split("/")
    return mirror.folder / "data" / folder / "image_SRF_4" / filename


@pytest.fixture
def mirror(data_root: Path, tmp_path: Path) -> Iterator[Server]:
    """Serves a copy of Set5 as `data/Set5/image_SRF_4/img_00N_SRF_4_HR.png` on 127.0.0.1."""
    with serve(tmp_path / "mirror") as server:
        for entry in get_dataset("set5").images:
            served(server, entry).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data_root / entry.path, served(server, entry))
        yield server


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


def test_download_fetches_all_then_nothing(mirror: Server, tmp_path: Path) -> None:
    dataset = get_dataset("set5")
    root = tmp_path / "root"
    assert download(dataset, root, mirror=mirror.url) == 5
    assert verify(dataset, root) == []
    assert len(mirror.requests) == 5
    assert sorted(p.name for p in (root / "Set5" / "HR").iterdir()) == [f"img_00{i}_SRF_4_HR.png" for i in range(1, 6)]

    seen: list[str] = []
    assert download(dataset, root, mirror=mirror.url, progress=lambda e: seen.append(e.name)) == 0
    assert len(mirror.requests) == 5, "files already present and verified must not be fetched again"
    assert seen == [e.name for e in dataset.images], "progress is reported for every file, fetched or not"


def test_download_replaces_only_a_damaged_file(mirror: Server, tmp_path: Path) -> None:
    dataset = get_dataset("set5")
    root = tmp_path / "root"
    download(dataset, root, mirror=mirror.url)
    entry = dataset.image("butterfly")
    (root / entry.path).write_bytes(b"not the image")
    mirror.requests.clear()
    assert download(dataset, root, mirror=mirror.url) == 1
    assert mirror.paths == ["/data/Set5/image_SRF_4/img_003_SRF_4_HR.png"]
    assert verify(dataset, root) == []


def test_corrupted_mirror_file_is_refused_and_not_written(mirror: Server, tmp_path: Path) -> None:
    dataset = get_dataset("set5")
    entry = dataset.image("butterfly")
    original = served(mirror, entry)
    data = bytearray(original.read_bytes())
    data[100] ^= 0xFF
    original.write_bytes(bytes(data))
    root = tmp_path / "root"
    with pytest.raises(SrevalError) as caught:
        download(dataset, root, mirror=mirror.url)
    message = str(caught.value)
    assert mirror_url(mirror.url, entry) in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert entry.sha256 in message
    # The files before it were written; nothing at all for the bad one, not even a temporary `.part`.
    assert sorted(p.name for p in (root / "Set5" / "HR").iterdir()) == ["img_001_SRF_4_HR.png", "img_002_SRF_4_HR.png"]


def test_http_404(mirror: Server, tmp_path: Path) -> None:
    entry = get_dataset("set5").image("baby")
    served(mirror, entry).unlink()
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


def test_cli_download_from_local_mirror(mirror: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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


def test_connection_dropped_mid_file_is_a_clear_error_and_resumes(
    mirror: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dropped connection is one SrevalError, not a traceback; the bytes so far stay in a `.part` (never under the
    image's name) and the next run continues them with a Range request."""
    dataset = get_dataset("set5")
    entry = dataset.images[0]
    url = mirror_url(mirror.url, entry)
    path = urlparse(url).path
    mirror.drops[path] = 10
    root = tmp_path / "root"
    with pytest.raises(SrevalError, match=r"connection dropped") as caught:
        download(dataset, root, mirror=mirror.url, timeout=5)
    assert f"after 10 of {entry.bytes} bytes" in str(caught.value) and url in str(caught.value)
    assert sorted(p.name for p in (root / "Set5" / "HR").iterdir()) == [f"{Path(entry.path).name}.part"]

    mirror.drops[path] = 20
    args = ["data", "download", "--datasets", "set5", "--data-root", str(root), "--mirror", mirror.url]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: download of {url} broke off after 30 of") and "Traceback" not in err
    assert main(args) == 0
    assert [seen.range for seen in mirror.requests if seen.path == path] == [None, "bytes=10-", "bytes=30-"]
    assert verify(dataset, root) == []
    assert not list(root.rglob("*.part"))


def test_stalled_server_times_out(mirror: Server, tmp_path: Path) -> None:
    mirror.stalls.add(urlparse(mirror_url(mirror.url, get_dataset("set5").images[0])).path)
    start = time.monotonic()
    with pytest.raises(SrevalError, match="timed out"):
        download(get_dataset("set5"), tmp_path / "root", mirror=mirror.url, timeout=0.5)
    assert time.monotonic() - start < 5


def test_offline_refuses_without_a_request(mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SREVAL_OFFLINE", "1")
    with pytest.raises(SrevalError, match=r"SREVAL_OFFLINE=1: not downloading img_001_SRF_4_HR\.png") as caught:
        download(get_dataset("set5"), tmp_path / "root", mirror=mirror.url)
    assert "SREVAL_DATA_ROOT" in str(caught.value)
    assert mirror.requests == []
    assert not (tmp_path / "root").exists()

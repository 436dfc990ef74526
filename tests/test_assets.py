"""Asset resolution: explicit path, SREVAL_ASSETS, sreval's cache, standard locations; checksums; `sreval assets`."""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_server import Server, allow_downloads, serve

from sreval import assets
from sreval.assets import Asset
from sreval.cli import main
from sreval.errors import ParameterError, SrevalError

pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture
def niqe_file(data_root: Path) -> Path:
    path = data_root.parent / "iqa" / "niqe" / "modelparameters.mat"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


def test_missing_asset_names_the_file_and_where_to_put_it(isolated: Path) -> None:
    with pytest.raises(assets.AssetMissing) as caught:
        assets.resolve("nrqm")
    message = str(caught.value)
    assert "NRQM_model.mat" in message and str(isolated / "cache" / "assets") in message
    assert "sreval assets add nrqm PATH" in message


def test_resolution_order(isolated: Path, niqe_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SREVAL_ASSETS", str(niqe_file.parent.parent))  # DIR/niqe/modelparameters.mat
    assert assets.resolve("niqe") == niqe_file
    installed = assets.add("niqe", niqe_file)
    assert installed == isolated / "cache" / "assets" / "modelparameters.mat"
    assert assets.resolve("niqe") == niqe_file  # SREVAL_ASSETS comes before the cache
    monkeypatch.delenv("SREVAL_ASSETS")
    assert assets.resolve("niqe") == installed
    assert assets.resolve("niqe", explicit=niqe_file) == niqe_file
    with pytest.raises(assets.AssetMissing, match="does not exist"):
        assets.resolve("niqe", explicit=isolated / "nope.mat")


def test_checksum_mismatch_is_an_error_not_a_fallback(isolated: Path, niqe_file: Path) -> None:
    fake = isolated / "fake" / "modelparameters.mat"
    fake.parent.mkdir()
    fake.write_bytes(b"not the LIVE model")
    with pytest.raises(SrevalError, match="is not the niqe asset"):
        assets.resolve("niqe", explicit=fake)
    with pytest.raises(SrevalError, match="not installed"):
        assets.add("niqe", fake)
    assert not (isolated / "cache" / "assets" / "modelparameters.mat").exists()


def test_vgg19_is_found_in_torchvision_cache_and_checked_by_hash_prefix(isolated: Path) -> None:
    """torchvision names checkpoints by the first 8 hex digits of their sha256; a stand-in cannot pass."""
    standin = isolated / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    standin.parent.mkdir(parents=True)
    standin.write_bytes(b"stand-in weights")
    assert hashlib.sha256(standin.read_bytes()).hexdigest()[:8] != "dcbb9e9d"
    assert standin in assets.search_paths(assets.get_asset("vgg19"))
    with pytest.raises(SrevalError, match="expected dcbb9e9d"):
        assets.resolve("vgg19")


def test_unverified_asset_is_used_as_is(isolated: Path) -> None:
    model = isolated / "NRQM_model.mat"
    model.write_bytes(b"whatever the user installed")
    assert assets.checksum_status(assets.get_asset("nrqm"), model) == "unverified"
    assert assets.resolve("nrqm", explicit=model) == model


def test_cli_lists_and_adds(isolated: Path, niqe_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assets"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^niqe +missing ", out, re.MULTILINE) and re.search(r"^nrqm +missing ", out, re.MULTILINE)
    assert "looked in:" in out
    assert main(["assets", "add", "niqe", str(niqe_file)]) == 0
    assert "installed niqe" in capsys.readouterr().out
    assert main(["assets"]) == 0
    assert re.search(r"^niqe +ok ", capsys.readouterr().out, re.MULTILINE)
    assert main(["assets", "add", "vgg16", str(niqe_file)]) == 2
    assert "unknown asset 'vgg16'" in capsys.readouterr().err


def test_bad_arguments_are_parameter_errors(isolated: Path) -> None:
    with pytest.raises(ParameterError, match="unknown asset 'vgg16'") as error:
        assets.get_asset("vgg16")
    assert error.value.parameter == "name"
    with pytest.raises(ParameterError, match="is not a file") as error:
        assets.add("niqe", isolated / "nothing.mat")
    assert error.value.parameter == "source"


# --- downloads (from a local server) --------------------------------------------------------------------------

TINY = b"tiny model " * 5000
TINY_SHA = hashlib.sha256(TINY).hexdigest()
TINY_BLOB = hashlib.sha1(b"blob %d\0" % len(TINY) + TINY).hexdigest()


def _tiny(name: str = "tiny", **fields: Any) -> Asset:
    values: dict[str, Any] = {"sha256": TINY_SHA, "size": len(TINY), "licence": "CC0 (test file)", **fields}
    sha = values.pop("sha256")
    return Asset(name, f"{name}.bin", name, sha, f"a {name} test model", "the test's server", **values)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A local server holding /tiny.bin, an asset `tiny` pointing at it, and downloads allowed."""
    allow_downloads(monkeypatch)
    with serve(tmp_path / "served") as state:
        monkeypatch.setitem(assets.ASSETS, "tiny", _tiny(urls=(state.put("/tiny.bin", TINY),)))
        yield state


def test_first_use_downloads_once_saying_what_where_and_how_big(
    isolated: Path, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    path = assets.resolve("tiny")
    assert path == isolated / "cache" / "assets" / "tiny.bin" and path.read_bytes() == TINY
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for part in ("tiny", "a tiny test model", f"{server.url}/tiny.bin", "53.7 KiB"):
        assert part in err
    assert len(server.requests) == 1
    assert assets.resolve("tiny") == path
    assert len(server.requests) == 1, "an installed asset is not fetched again"
    assert capsys.readouterr().err == ""


def test_offline_first_use_is_asset_missing_saying_how_to_download(
    isolated: Path, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SREVAL_OFFLINE", "1")
    with pytest.raises(assets.AssetMissing) as caught:
        assets.resolve("tiny")
    message = str(caught.value)
    assert message.startswith("tiny.bin (a tiny test model) not found; looked in: ")
    assert "`sreval assets download tiny`" in message and f"{server.url}/tiny.bin" in message
    assert "SREVAL_OFFLINE unset" in message
    assert server.requests == [] and capsys.readouterr().err == ""


def test_unreachable_first_use_is_asset_missing(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allow_downloads(monkeypatch)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/tiny.bin"
    monkeypatch.setitem(assets.ASSETS, "tiny", _tiny(urls=(url,)))
    with pytest.raises(assets.AssetMissing, match=f"Downloading it failed: cannot reach {url}") as caught:
        assets.resolve("tiny")
    assert "`sreval assets download tiny`" in str(caught.value)
    assert not (isolated / "cache" / "assets").exists()


def test_a_wrong_file_on_the_server_is_not_installed(isolated: Path, server: Server) -> None:
    server.put("/tiny.bin", TINY[:-1] + b"!")
    with pytest.raises(
        assets.AssetMissing, match=f"Downloading it failed: download of {server.url}/tiny.bin has sha256"
    ):
        assets.resolve("tiny")
    assert list((isolated / "cache" / "assets").iterdir()) == []


def test_locate_and_the_listing_never_download(
    isolated: Path, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(assets.AssetMissing):
        assets.locate("tiny")
    assert main(["assets"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^tiny +missing +tiny\.bin: a tiny test model$", out, re.MULTILINE)
    assert "licence: CC0 (test file); 53.7 KiB" in out
    assert f"from: {server.url}/tiny.bin (`sreval assets download tiny`)" in out
    assert server.requests == []


def test_git_blob_only_pinning(isolated: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{server.url}/tiny.bin"
    monkeypatch.setitem(assets.ASSETS, "blob", _tiny("blob", sha256=None, size=None, git_blob=TINY_BLOB, urls=(url,)))
    path = assets.resolve("blob")
    assert path.read_bytes() == TINY
    assert assets.checksum_status(assets.get_asset("blob"), path) == "ok"
    path.write_bytes(TINY + b"\n")
    with pytest.raises(SrevalError, match=f"has git blob [0-9a-f]{{40}}, expected {TINY_BLOB}"):
        assets.resolve("blob")


def test_checksum_status_checks_size_sha256_and_git_blob(isolated: Path) -> None:
    path = isolated / "tiny.bin"
    path.write_bytes(TINY)
    assert assets.checksum_status(_tiny(git_blob=TINY_BLOB), path) == "ok"
    assert assets.checksum_status(_tiny(git_blob="0" * 40), path) == "mismatch"
    assert assets.checksum_status(_tiny(sha256=None, size=len(TINY) + 1), path) == "mismatch"
    assert assets.checksum_status(_tiny(sha256=None, size=len(TINY)), path) == "unverified", "a size is no hash"
    assert assets.checksum_status(_tiny(sha256=TINY_SHA[:8]), path) == "ok"


def test_an_asset_without_a_hash_is_never_downloaded(
    isolated: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(assets.ASSETS, "loose", _tiny("loose", sha256=None, urls=(f"{server.url}/tiny.bin",)))
    with pytest.raises(SrevalError, match="downloads only files it can verify"):
        assets.download("loose")
    with pytest.raises(assets.AssetMissing, match="sreval assets add loose PATH"):
        assets.resolve("loose")
    assert server.requests == []


def test_cli_download_goes_on_after_a_failure(
    isolated: Path, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(assets.ASSETS, "gone", _tiny("gone", urls=(f"{server.url}/gone.bin",)))
    assert main(["assets", "download", "gone", "tiny"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"error: download of {server.url}/gone.bin failed: HTTP 404 Not Found"]
    assert f"tiny: downloaded 53.7 KiB to {isolated / 'cache' / 'assets' / 'tiny.bin'}, verified" in out
    assert main(["assets", "download", "tiny"]) == 0
    assert "tiny: already present at " in capsys.readouterr().out
    assert len(server.requests) == 2


def test_cli_download_all_and_a_bad_cached_copy(
    isolated: Path, server: Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in assets.ASSETS if n != "tiny"]:  # the real catalogue would go to the internet
        monkeypatch.delitem(assets.ASSETS, name)
    monkeypatch.setitem(assets.ASSETS, "manual", _tiny("manual"))
    cached = isolated / "cache" / "assets" / "tiny.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"damaged")
    assert main(["assets", "download", "--all"]) == 0
    out = capsys.readouterr().out
    assert "tiny: downloaded" in out and "manual: skipped, sreval cannot download it" in out
    assert cached.read_bytes() == TINY


@pytest.mark.parametrize("args", [[], ["tiny", "--all"]])
def test_cli_download_needs_names_or_all(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["assets", "download", *args]) == 2
    assert "error: name the assets to download, or give --all" in capsys.readouterr().err

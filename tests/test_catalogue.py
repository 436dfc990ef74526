"""The asset catalogue: every entry says where the file comes from, under what licence, and how to recognise it;
the files present in the shared data match their entries byte for byte."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from sreval.assets.catalogue import ASSETS, Asset

#: Names that tests, zoo configs and the command line use: renaming one breaks them.
STABLE_NAMES = {"niqe", "nrqm", "nrqm-original", "vgg19", "enhancenet-pat", "esrgan-official", "esrgan-psnr-official"}
#: Entries for which no hash of any kind is published (used unverified; their hash_source says so).
UNHASHED = {"nrqm"}
HEX40 = re.compile(r"[0-9a-f]{40}")


def _file_hashes(path: Path) -> tuple[int, str, str]:
    raw = path.read_bytes()
    return len(raw), hashlib.sha256(raw).hexdigest(), hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()


def _shared_file(data_root: Path, relative: str) -> Path:
    path = data_root.parent / relative
    if not path.is_file():
        if os.environ.get("SREVAL_REQUIRE_DATA") == "1":
            pytest.fail(f"{path} is required (SREVAL_REQUIRE_DATA=1) but not available")
        pytest.skip(f"{path} not available")
    return path


def test_names_are_stable() -> None:
    assert set(ASSETS) == STABLE_NAMES
    assert all(name == asset.name for name, asset in ASSETS.items())


@pytest.mark.parametrize("asset", ASSETS.values(), ids=list(ASSETS))
def test_entry_is_complete_and_well_formed(asset: Asset) -> None:
    assert asset.licence.strip() and asset.licence != "unknown"
    assert asset.hash_source.strip() and asset.description.strip() and asset.source.strip()
    assert asset.urls and all(urlparse(u).scheme == "https" and urlparse(u).netloc for u in asset.urls)
    assert len(set(asset.urls)) == len(asset.urls)
    if asset.sha256 is not None:
        assert re.fullmatch(r"[0-9a-f]{64}|[0-9a-f]{8}", asset.sha256), asset.sha256
    if asset.git_blob is not None:
        assert HEX40.fullmatch(asset.git_blob), asset.git_blob
    if asset.size is not None:
        assert isinstance(asset.size, int) and asset.size > 0
    hashed = asset.sha256 is not None or asset.git_blob is not None
    assert hashed != (asset.name in UNHASHED)
    if asset.name in UNHASHED:
        assert "none published" in asset.hash_source


@pytest.mark.parametrize("asset", ASSETS.values(), ids=list(ASSETS))
def test_repository_urls_are_pinned_to_a_commit(asset: Asset) -> None:
    """A URL into a repository names a commit, not a branch: the bytes behind it cannot change."""
    for url in asset.urls:
        parts = urlparse(url).path.strip("/").split("/")
        host = urlparse(url).netloc
        if host == "raw.githubusercontent.com":
            assert HEX40.fullmatch(parts[2]), url
        elif host == "huggingface.co":
            assert parts[2] == "resolve" and HEX40.fullmatch(parts[3]), url


def test_a_file_name_belongs_to_one_asset() -> None:
    """Assets are looked up by file name: two entries with one name would take each other's files."""
    names = [a.filename for a in ASSETS.values()]
    assert len(set(names)) == len(names)


def test_git_blob_recipe() -> None:
    """The Git blob id the catalogue pins is Git's object id of the content (checked against a known value:
    the blob id Git gives an empty file)."""
    empty = hashlib.sha1(b"blob 0\0").hexdigest()
    assert empty == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


@pytest.mark.parametrize(
    ("name", "relative"),
    [("niqe", "iqa/niqe/modelparameters.mat"), ("enhancenet-pat", "method_weights/EnhanceNet-PAT/weights")],
)
def test_shared_files_match_their_entries(data_root: Path, name: str, relative: str) -> None:
    size, sha256, blob = _file_hashes(_shared_file(data_root, relative))
    asset = ASSETS[name]
    assert (asset.size, asset.sha256, asset.git_blob) == (size, sha256, blob)


def test_pyiqa_and_torchvision_caches_are_standard_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert ASSETS["nrqm"].standard_locations() == [tmp_path / "torch" / "hub" / "pyiqa" / "NRQM_model.mat"]
    assert ASSETS["vgg19"].standard_locations() == [tmp_path / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"]
    assert ASSETS["nrqm-original"].standard_locations() == []

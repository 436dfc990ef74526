"""The dataset registry, verification against the manifest, HR loading and the `sreval data verify` command."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from sreval.cli import main
from sreval.datasets.registry import (
    SCALE,
    Dataset,
    ImageEntry,
    get_dataset,
    load_hr,
    mod_crop,
    parse_datasets,
    registry,
    verify,
)
from sreval.errors import SrevalError

KNOWN = ("set5", "set14", "bsd100", "urban100")


@pytest.fixture
def set5_root(data_root: Path, tmp_path: Path) -> Path:
    """A private data root holding a byte-exact copy of Set5 only, free to damage."""
    root = tmp_path / "data"
    for entry in get_dataset("set5").images:
        target = root / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_root / entry.path, target)
    return root


def _flip_byte(path: Path) -> None:
    """Corrupt one byte in the middle of the file, keeping its size."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# --- registry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "count"), [("set5", 5), ("set14", 14), ("bsd100", 100), ("urban100", 100)])
def test_dataset_sizes(key: str, count: int) -> None:
    dataset = get_dataset(key)
    assert len(dataset.images) == count
    assert len({e.name for e in dataset.images}) == count, "image names must be unique within a set"
    assert dataset.scale == SCALE == 4


def test_registry_holds_exactly_the_four_sets() -> None:
    assert tuple(registry()) == KNOWN


def test_set5_names_in_file_order() -> None:
    dataset = get_dataset("set5")
    assert [e.name for e in dataset.images] == ["baby", "bird", "butterfly", "head", "woman"]
    assert dataset.image("woman").path == "Set5/HR/img_005_SRF_4_HR.png"
    assert dataset.image("woman").stem == "img_005_SRF_4"


def test_manifest_names_agree_with_names_csv(data_root: Path) -> None:
    """names.csv beside the data is an independent record of which img_NNN file is which Set5/Set14 image."""
    with open(data_root / "names.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for key, folder in (("set5", "Set5"), ("set14", "Set14")):
        expected = {r["file_stem"]: r["name"] for r in rows if r["set"] == folder}
        assert {e.stem: e.name for e in get_dataset(key).images} == expected


@pytest.mark.parametrize("key", KNOWN)
def test_manifest_sizes_are_multiples_of_the_scale(key: str) -> None:
    """HR images are stored mod-cropped, so mod_crop never changes a benchmark image."""
    for entry in get_dataset(key).images:
        assert entry.width % SCALE == 0 and entry.height % SCALE == 0, entry
        assert entry.channels in (1, 3), entry
        assert entry.path == f"{get_dataset(key).folder}/HR/{entry.stem}_HR.png"


def test_unknown_image_name_is_refused() -> None:
    with pytest.raises(SrevalError, match="set5 has no image 'lenna'"):
        get_dataset("set5").image("lenna")


# --- grayscale rule: loaded as stored ---------------------------------------------------------------------


def test_bridge_is_single_channel(data_root: Path) -> None:
    """Set14 bridge is a 1-channel PNG and stays 1-channel (no expansion to RGB)."""
    entry = get_dataset("set14").image("bridge")
    assert entry.channels == 1
    assert load_hr(entry, data_root).pixels.shape == (512, 512, 1)


def test_man_stays_rgb_although_its_channels_are_equal(data_root: Path) -> None:
    """Set14 man is grayscale content stored as RGB; it stays 3-channel (no collapsing to gray)."""
    entry = get_dataset("set14").image("man")
    assert entry.channels == 3
    pixels = load_hr(entry, data_root).pixels
    assert pixels.shape == (512, 512, 3)
    assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])


@pytest.mark.parametrize("key", ["set5", "set14"])
def test_manifest_shapes_match_the_loaded_images(data_root: Path, key: str) -> None:
    for entry in get_dataset(key).images:
        image = load_hr(entry, data_root)
        assert image.pixels.shape == (entry.height, entry.width, entry.channels), entry.name
        assert image.pixels.dtype == np.uint8
        assert image.sha256 == entry.sha256


# --- get_dataset / parse_datasets ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["set5", "Set5", "SET5", "  set5 "])
def test_get_dataset_is_case_insensitive(spec: str) -> None:
    assert get_dataset(spec) is get_dataset("set5")


def test_get_dataset_unknown_lists_the_known_ones() -> None:
    with pytest.raises(SrevalError) as caught:
        get_dataset("div2k")
    message = str(caught.value)
    assert "'div2k'" in message
    for key in KNOWN:
        assert key in message


def test_parse_datasets_keeps_order_and_drops_duplicates() -> None:
    datasets = parse_datasets(["Urban100", " set5", "SET5", "", "urban100 ", "BSD100"])
    assert [d.key for d in datasets] == ["urban100", "set5", "bsd100"]


def test_parse_datasets_unknown_name() -> None:
    with pytest.raises(SrevalError, match=r"unknown dataset 'set7'; known: set5, set14, bsd100, urban100"):
        parse_datasets(["set5", "set7"])


@pytest.mark.parametrize("spec", [[], [""], [" "], [" ", "", " "]])
def test_parse_datasets_empty_spec(spec: list[str]) -> None:
    with pytest.raises(SrevalError, match="no dataset named") as caught:
        parse_datasets(spec)
    assert "set5" in str(caught.value)


# --- verify ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", KNOWN)
def test_real_data_root_verifies(data_root: Path, key: str) -> None:
    """Every file of the shared benchmark data is byte-identical to the manifest (hashes ~170 MB in all)."""
    assert verify(get_dataset(key), data_root) == []


def test_verify_copy_is_ok(set5_root: Path) -> None:
    assert verify(get_dataset("set5"), set5_root) == []


def test_verify_reports_a_missing_file(set5_root: Path) -> None:
    entry = get_dataset("set5").image("bird")
    (set5_root / entry.path).unlink()
    problems = verify(get_dataset("set5"), set5_root)
    assert len(problems) == 1
    assert problems[0].path == set5_root / entry.path
    assert "missing" in problems[0].message
    assert str(set5_root / entry.path) in str(problems[0])


def test_verify_reports_a_changed_byte(set5_root: Path) -> None:
    entry = get_dataset("set5").image("head")
    _flip_byte(set5_root / entry.path)
    problems = verify(get_dataset("set5"), set5_root)
    assert [p.path for p in problems] == [set5_root / entry.path]
    assert "sha256" in problems[0].message
    assert entry.sha256 in problems[0].message


def test_verify_reports_a_truncated_file(set5_root: Path) -> None:
    entry = get_dataset("set5").image("baby")
    path = set5_root / entry.path
    path.write_bytes(path.read_bytes()[:-10])
    problems = verify(get_dataset("set5"), set5_root)
    assert [p.path for p in problems] == [path]
    assert f"has {entry.bytes - 10} bytes, expected {entry.bytes}" in problems[0].message


def test_verify_reports_every_problem_not_only_the_first(set5_root: Path) -> None:
    dataset = get_dataset("set5")
    (set5_root / dataset.image("baby").path).unlink()
    _flip_byte(set5_root / dataset.image("woman").path)
    assert [p.path.name for p in verify(dataset, set5_root)] == ["img_001_SRF_4_HR.png", "img_005_SRF_4_HR.png"]


# --- load_hr ----------------------------------------------------------------------------------------------


def test_load_hr_corrupted_copy_names_file_and_both_checksums(set5_root: Path) -> None:
    """A damaged HR file is reported as differing from the manifest, whether or not it still decodes."""
    entry = get_dataset("set5").image("butterfly")
    path = set5_root / entry.path
    _flip_byte(path)
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(SrevalError) as caught:
        load_hr(entry, set5_root)
    message = str(caught.value)
    assert str(path) in message
    assert entry.sha256 in message
    assert actual in message


def test_load_hr_truncated_copy_is_a_checksum_error(set5_root: Path) -> None:
    entry = get_dataset("set5").image("bird")
    path = set5_root / entry.path
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SrevalError, match="differs from the published set5 image bird") as caught:
        load_hr(entry, set5_root)
    assert str(path) in str(caught.value)


def test_load_hr_reencoded_image_is_refused(set5_root: Path, data_root: Path) -> None:
    """Same pixels, different bytes (another PNG encoder setting): still not the published file."""
    from sreval.imageio import save_png

    entry = get_dataset("set5").image("head")
    original = load_hr(entry, data_root)
    save_png(set5_root / entry.path, original.pixels)
    with pytest.raises(SrevalError, match=f"expected {entry.sha256}"):
        load_hr(entry, set5_root)


def test_load_hr_missing_root_says_how_to_fix(tmp_path: Path) -> None:
    entry = get_dataset("set14").image("zebra")
    root = tmp_path / "nowhere"
    with pytest.raises(SrevalError) as caught:
        load_hr(entry, root)
    message = str(caught.value)
    assert str(root / entry.path) in message
    for hint in ("SREVAL_DATA_ROOT", "--data-root", "sreval data download", "Set14/"):
        assert hint in message


# --- mod_crop -------------------------------------------------------------------------------------------------


def test_mod_crop_keeps_the_top_left() -> None:
    pixels = np.arange(10 * 7 * 3, dtype=np.uint8).reshape(10, 7, 3)
    cropped = mod_crop(pixels, 4)
    assert cropped.shape == (8, 4, 3)
    assert np.array_equal(cropped, pixels[:8, :4])


def test_mod_crop_leaves_multiples_unchanged() -> None:
    pixels = np.zeros((12, 8, 1), dtype=np.uint8)
    assert mod_crop(pixels, 4).shape == (12, 8, 1)
    assert mod_crop(pixels, 3).shape == (12, 6, 1)


# --- checksum ---------------------------------------------------------------------------------------------------


def test_checksum_is_stable() -> None:
    dataset = get_dataset("set5")
    rebuilt = Dataset(dataset.key, dataset.folder, dataset.scale, tuple(dataset.images))
    assert dataset.checksum == rebuilt.checksum
    assert len(dataset.checksum) == 64
    assert dataset.checksum != get_dataset("set14").checksum


def test_checksum_changes_with_an_image_hash() -> None:
    dataset = get_dataset("set5")
    images: list[ImageEntry] = list(dataset.images)
    images[2] = dataclasses.replace(images[2], sha256="0" * 64)
    assert dataclasses.replace(dataset, images=tuple(images)).checksum != dataset.checksum


def test_checksum_changes_with_an_image_name() -> None:
    dataset = get_dataset("set5")
    images = (dataclasses.replace(dataset.images[0], name="baby2"), *dataset.images[1:])
    assert dataclasses.replace(dataset, images=images).checksum != dataset.checksum


# --- sreval data verify -------------------------------------------------------------------------------------------


def test_cli_verify_ok(set5_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "verify", "--datasets", "set5", "--data-root", str(set5_root)]) == 0
    out, err = capsys.readouterr()
    assert "set5: 5 files, ok" in out
    assert err == ""


def test_cli_verify_corrupted_file(set5_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = set5_root / get_dataset("set5").image("woman").path
    _flip_byte(path)
    assert main(["data", "verify", "--datasets", "set5", "--data-root", str(set5_root)]) == 2
    out, err = capsys.readouterr()
    assert "set5: 5 files, 1 problem(s)" in out
    assert str(path) in out  # the per-file problem list is printed on stdout
    assert err.startswith("error: 1 file(s) under ")
    assert str(set5_root) in err
    assert "Traceback" not in out + err


def test_cli_verify_missing_root_is_one_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A data root holding none of the files is one message (where, 0 of N, what to do), not a line per file."""
    root = tmp_path / "none"
    assert main(["data", "verify", "--data-root", str(root)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"error: no benchmark file under {root} (0 of 219 present for set5, set14, bsd100, urban100)")
    assert "SREVAL_DATA_ROOT" in err and "sreval data download" in err
    assert "Traceback" not in err


def test_cli_verify_partial_root_lists_the_bad_files(set5_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (set5_root / get_dataset("set5").image("baby").path).unlink()
    assert main(["data", "verify", "--datasets", "set5,set14", "--data-root", str(set5_root)]) == 2
    out, err = capsys.readouterr()
    assert "set5: 5 files, 1 problem(s)" in out and out.count(": missing (expected") == 1
    assert f"set14: 14 files, none present under {set5_root / 'Set14' / 'HR'}" in out
    assert "error: 15 file(s)" in err


def test_cli_verify_unknown_dataset(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["data", "verify", "--datasets", "set9", "--data-root", str(tmp_path)]) == 2
    assert "error: unknown dataset 'set9'" in capsys.readouterr().err

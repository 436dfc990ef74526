"""Matching a folder of SR outputs to a dataset's images by file name (contents are never read)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sreval.datasets.registry import get_dataset
from sreval.errors import SrevalError
from sreval.methods.folder import Match, aliases, match_folder


def _folder(tmp_path: Path, *names: str) -> Path:
    """A folder of empty files with these names: match_folder looks at names only."""
    folder = tmp_path / "sr"
    folder.mkdir()
    for name in names:
        (folder / name).touch()
    return folder


def _names(match: Match) -> dict[str, str]:
    """image name → matched file name."""
    return {image: path.name for image, path in match.files.items()}


def test_set5_naming_styles(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path, "baby.png", "birdx4.png", "butterfly_x4_SR.png", "head_SRGAN-VGG54.png", "img_005_SRF_4_SR.png"
    )
    match = match_folder(folder, get_dataset("set5"))
    assert _names(match) == {
        "baby": "baby.png",
        "bird": "birdx4.png",
        "butterfly": "butterfly_x4_SR.png",
        "head": "head_SRGAN-VGG54.png",
        "woman": "img_005_SRF_4_SR.png",
    }
    assert match.missing == []
    assert match.extra == []
    assert all(path.parent == folder for path in match.files.values())


def test_non_images_ignored_unknown_images_extra_missing_listed(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "bird.png", "notes.txt", "baby.png.txt", "readme.png", "lena.png", "woman")
    (folder / "head.png").mkdir()  # a folder with an image-like name is not a file
    match = match_folder(folder, get_dataset("set5"))
    assert _names(match) == {"bird": "bird.png"}
    assert [p.name for p in match.extra] == ["lena.png", "readme.png"]
    assert match.missing == ["baby", "butterfly", "head", "woman"]  # in dataset order


@pytest.mark.parametrize(
    "filename",
    ["BABY.PNG", "Baby_X4.Png", "baby-sr.png", "baby-x4.png", "baby_x4.jpg", "baby.bmp", "img_001.tif",
     "IMG_001_SRF_4_HR.png", "baby_SRResNet-MSE.png"],
)
def test_single_file_matches_baby(tmp_path: Path, filename: str) -> None:
    match = match_folder(_folder(tmp_path, filename), get_dataset("set5"))
    assert _names(match) == {"baby": filename}
    assert match.extra == []


@pytest.mark.parametrize("filename", ["babyish.png", "babysr.png", "ababy.png", "baby4.png", "img_01.png"])
def test_names_that_only_resemble_an_image_are_extra(tmp_path: Path, filename: str) -> None:
    """A name must be followed by `_`, `-`, a scale suffix, or nothing: a mere prefix is not enough."""
    match = match_folder(_folder(tmp_path, filename), get_dataset("set5"))
    assert match.files == {}
    assert [p.name for p in match.extra] == [filename]


def test_two_files_for_one_image_are_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "bird.png", "bird_x4_SR.png")
    with pytest.raises(SrevalError) as caught:
        match_folder(folder, get_dataset("set5"))
    message = str(caught.value)
    assert "bird.png" in message and "bird_x4_SR.png" in message
    assert "'bird'" in message and str(folder) in message


def test_file_stem_and_name_for_the_same_image_are_refused(tmp_path: Path) -> None:
    """`woman.png` and `img_005_SRF_4_SR.png` are the same Set5 image under two naming styles."""
    with pytest.raises(SrevalError, match=r"img_005_SRF_4_SR\.png and woman\.png"):
        match_folder(_folder(tmp_path, "woman.png", "img_005_SRF_4_SR.png"), get_dataset("set5"))


# --- Set14: names that are prefixes of other words or of each other -------------------------------------------


def test_set14_similar_names_map_to_their_own_images(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "man.png", "face.png", "foreman.png", "flowers.png", "monarch_x4.png", "comic-x4.png")
    assert _names(match_folder(folder, get_dataset("set14"))) == {
        "man": "man.png",
        "face": "face.png",
        "foreman": "foreman.png",
        "flowers": "flowers.png",
        "monarch": "monarch_x4.png",
        "comic": "comic-x4.png",
    }


@pytest.mark.parametrize("filename", ["manx4.png", "man_x4.png", "man-SR.png", "img_010_SRF_4_SR.png"])
def test_set14_man_variants(tmp_path: Path, filename: str) -> None:
    assert _names(match_folder(_folder(tmp_path, filename), get_dataset("set14"))) == {"man": filename}


@pytest.mark.parametrize("filename", ["manx.png", "manatee.png", "mandrill.png", "manxx4.png", "woman.png"])
def test_set14_words_starting_or_ending_with_man_are_not_man(tmp_path: Path, filename: str) -> None:
    match = match_folder(_folder(tmp_path, filename), get_dataset("set14"))
    assert match.files == {}
    assert [p.name for p in match.extra] == [filename]


# --- BSD100: numbered names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["img_001.png", "img_001_SRF_4_HR.png", "img_001_SRF_4_SR.png", "img_001x4.png"])
def test_bsd100_numbered_names(tmp_path: Path, filename: str) -> None:
    assert _names(match_folder(_folder(tmp_path, filename), get_dataset("bsd100"))) == {"img_001": filename}


def test_bsd100_longer_number_is_not_a_prefix_match(tmp_path: Path) -> None:
    """`img_0010` is not `img_001` followed by something: it matches no image (there is no img_0010)."""
    match = match_folder(_folder(tmp_path, "img_0010.png", "img_010.png"), get_dataset("bsd100"))
    assert _names(match) == {"img_010": "img_010.png"}
    assert [p.name for p in match.extra] == ["img_0010.png"]
    assert len(match.missing) == 99 and "img_001" in match.missing


def test_aliases_longest_first() -> None:
    entry = get_dataset("set5").image("woman")
    assert aliases(entry) == ["img_005_srf_4", "img_005", "woman"]
    assert aliases(get_dataset("bsd100").image("img_007")) == ["img_007_srf_4", "img_007"]


# --- real published outputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "key"), [("Set14/SRGAN-VGG54", "set14"), ("Set5/SRGAN-VGG54", "set5"), ("Set5/SRResNet-MSE", "set5")]
)
def test_published_outputs_match_completely(method_results: Path, folder: str, key: str) -> None:
    dataset = get_dataset(key)
    match = match_folder(method_results / folder, dataset)
    assert match.missing == []
    assert match.extra == []
    assert set(match.files) == {e.name for e in dataset.images}
    method = folder.split("/")[1]
    assert all(path.name == f"{name}_{method}.png" for name, path in match.files.items())


# --- not a folder --------------------------------------------------------------------------------------------------


def test_file_instead_of_folder(tmp_path: Path) -> None:
    path = tmp_path / "baby.png"
    path.touch()
    with pytest.raises(SrevalError, match="is not a folder"):
        match_folder(path, get_dataset("set5"))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SrevalError, match=re.escape(f"{tmp_path / 'nope'} is not a folder")):
        match_folder(tmp_path / "nope", get_dataset("set5"))

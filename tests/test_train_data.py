"""Training data: finding training folders and images, skipping unusable ones, the seeded crop stream, LR inputs.

The stream properties that training correctness rests on are checked as equalities of whole batches: the same
seed gives the same batches, resuming equals continuing, DDP ranks together equal one process, and worker
processes change nothing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import _require
from PIL import Image

from sreval.errors import SrevalError
from sreval.matlab.imresize import VARIANTS, imresize
from sreval.train.batches import TRANSFORMS, RandomCrops, StepBatches, make_loader, make_lr, to_unit
from sreval.train.data import (
    CROP_ESRGAN,
    CROP_SRRESNET,
    TrainingImages,
    find_images,
    index_images,
    resolve_train_dir,
    training_root,
)

CROP = 16  # small crops keep the whole file fast; the real crop sizes are used on T91 only


def _save(path: Path, width: int, height: int, *, mode: str = "RGB", seed: int = 0, **params: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 1 if mode == "L" else 3
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(path, **params)


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A training folder with nested subfolders, several formats and every kind of file that must be left out."""
    root = tmp_path / "mixed"
    _save(root / "a.png", 40, 32, seed=1)
    _save(root / "B.JPG", 48, 48, seed=2, quality=95)
    _save(root / "sub" / "c.bmp", 32, 40, seed=3)
    _save(root / "sub" / "deeper" / "d.png", 36, 36, mode="L", seed=4)
    _save(root / "small.png", 10, 40, seed=5)  # narrower than CROP
    (root / "broken.png").write_bytes(b"this is not an image")
    _save(root / ".hidden.png", 40, 40, seed=6)
    _save(root / ".cache" / "x.png", 40, 40, seed=7)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def images(mixed: Path) -> TrainingImages:
    return index_images(mixed, CROP)


def _batches(
    images: TrainingImages,
    *,
    batch: int = 4,
    seed: int = 0,
    start_step: int = 0,
    stop_step: int = 5,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
) -> list[torch.Tensor]:
    loader = make_loader(
        images,
        batch=batch,
        seed=seed,
        start_step=start_step,
        stop_step=stop_step,
        rank=rank,
        world_size=world_size,
        workers=workers,
    )
    return list(loader)


# --- training root and folder -----------------------------------------------------------------------------


def test_training_root_flag_then_env_then_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(tmp_path / "env"))
    assert training_root(tmp_path / "flag") == tmp_path / "flag"
    assert training_root() == tmp_path / "env"
    monkeypatch.delenv("SREVAL_TRAINING_ROOT")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert training_root() == tmp_path / "xdg" / "sreval" / "training"


def test_resolve_train_dir_path_name_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "training"
    (root / "T91").mkdir(parents=True)
    (root / "DIV2K" / "DIV2K_train_HR").mkdir(parents=True)
    (root / ".trash").mkdir()
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(root))
    monkeypatch.chdir(tmp_path)

    assert resolve_train_dir(root / "T91") == root / "T91"  # a folder path, used as is
    assert resolve_train_dir("T91") == root / "T91"
    assert resolve_train_dir("t91") == root / "T91"
    assert resolve_train_dir("DIV2K/DIV2K_train_HR") == root / "DIV2K" / "DIV2K_train_HR"
    other = tmp_path / "other"
    (other / "T91").mkdir(parents=True)
    assert resolve_train_dir("T91", root=other) == other / "T91"  # the flag beats the environment
    with pytest.raises(SrevalError, match=r"no training set given.*available there: DIV2K, T91\)"):
        resolve_train_dir(None)
    with pytest.raises(SrevalError, match=r"'Flickr2K' not found.*train_dir.*SREVAL_TRAINING_ROOT"):
        resolve_train_dir("Flickr2K")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(SrevalError, match="is a file"):
        resolve_train_dir(tmp_path / "file.png")
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(tmp_path / "missing"))
    with pytest.raises(SrevalError, match=r"does not exist\).*SREVAL_TRAINING_ROOT"):
        resolve_train_dir("T91")
    monkeypatch.chdir(other)
    assert resolve_train_dir("T91") == Path("T91")  # an existing folder beats a name under the root


# --- discovery and indexing -------------------------------------------------------------------------------


def test_find_images_recursive_sorted_by_extension(mixed: Path) -> None:
    found = [p.relative_to(mixed).as_posix() for p in find_images(mixed)]
    assert found == ["B.JPG", "a.png", "broken.png", "small.png", "sub/c.bmp", "sub/deeper/d.png"]


def test_find_images_leaves_out_lr_and_held_out_folders(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    div2k = tmp_path / "DIV2K"
    _save(div2k / "DIV2K_train_HR" / "0001.png", 20, 20)
    _save(div2k / "DIV2K_train_LR_bicubic" / "X4" / "0001x4.png", 5, 5)
    _save(div2k / "DIV2K_valid_HR" / "0801.png", 20, 20)
    with caplog.at_level(logging.WARNING, logger="sreval.train.data"):
        found = find_images(div2k)
    assert found == [div2k / "DIV2K_train_HR" / "0001.png"]
    assert "left out 2 subfolders" in caplog.text and "DIV2K_train_LR_bicubic, DIV2K_valid_HR" in caplog.text
    assert find_images(div2k / "DIV2K_valid_HR") == [div2k / "DIV2K_valid_HR" / "0801.png"]  # named: used
    only_lr = tmp_path / "only_lr"
    _save(only_lr / "LR" / "x.png", 5, 5)
    with pytest.raises(SrevalError, match="left out 1 subfolders named like LR"):
        find_images(only_lr)


def test_find_images_errors(tmp_path: Path) -> None:
    with pytest.raises(SrevalError, match="does not exist"):
        find_images(tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("")
    with pytest.raises(SrevalError, match=r"no images in training folder .*\.png, \.jpg"):
        find_images(tmp_path / "empty")


def test_index_skips_small_and_unreadable_with_counts(mixed: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sreval.train.data"):
        images = index_images(mixed, CROP)
    assert [p.name for p in images.paths] == ["B.JPG", "a.png", "c.bmp", "d.png"]
    assert images.sizes == ((48, 48), (40, 32), (32, 40), (36, 36))
    assert (images.found, images.skipped, len(images)) == (6, 2, 4)
    assert images.too_small == (mixed / "small.png",)
    assert [p for p, _ in images.unreadable] == [mixed / "broken.png"]
    assert "skipped 1 of 6 images" in caplog.text and "smaller than the 16×16 crop: small.png (10×40)" in caplog.text
    assert "skipped 1 of 6 files" in caplog.text and "broken.png" in caplog.text


def test_index_names_only_the_first_few(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(8):
        _save(tmp_path / f"s{i}.png", 8, 8)
    _save(tmp_path / "big.png", 20, 20)
    with caplog.at_level(logging.WARNING, logger="sreval.train.data"):
        assert len(index_images(tmp_path, CROP)) == 1
    assert "skipped 8 of 9 images" in caplog.text and "s4.png (8×8) and 3 more" in caplog.text


def test_index_errors_when_nothing_is_usable(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", 12, 30)
    _save(tmp_path / "b.png", 30, 14)
    (tmp_path / "c.jpg").write_bytes(b"junk")
    with pytest.raises(SrevalError, match=r"of 3 image files, 2 are smaller than the 16×16 crop.*1 cannot be opened"):
        index_images(tmp_path, CROP)
    with pytest.raises(SrevalError, match="crop size must be a positive number"):
        index_images(tmp_path, 0)


# --- the crop stream --------------------------------------------------------------------------------------


def test_same_seed_same_batches_other_seed_other_batches(images: TrainingImages) -> None:
    first = _batches(images)
    again = _batches(index_images(images.folder, CROP))  # a fresh index and loader
    assert len(first) == 5 and all(b.shape == (4, 3, CROP, CROP) and b.dtype == torch.uint8 for b in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other = _batches(images, seed=1)
    assert not any(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_resuming_equals_continuing(images: TrainingImages) -> None:
    uninterrupted = _batches(images, stop_step=6)
    resumed = _batches(images, start_step=3, stop_step=6)
    assert all(torch.equal(a, b) for a, b in zip(uninterrupted[3:], resumed, strict=True))


def test_ranks_together_equal_one_process(images: TrainingImages) -> None:
    single = _batches(images, batch=6)
    ranks = [_batches(images, batch=6, rank=r, world_size=3) for r in range(3)]
    for step, whole in enumerate(single):
        assert torch.equal(torch.cat([rank[step] for rank in ranks]), whole)


def test_workers_do_not_change_batches(images: TrainingImages) -> None:
    in_process = _batches(images, stop_step=3)
    with_workers = _batches(images, stop_step=3, workers=2)
    assert all(torch.equal(a, b) for a, b in zip(in_process, with_workers, strict=True))


def test_each_epoch_visits_every_image_once(images: TrainingImages) -> None:
    crops = RandomCrops(images, seed=5)
    n = len(images)
    epochs = [[crops.sample(g).image for g in range(e * n, (e + 1) * n)] for e in range(4)]
    assert all(sorted(epoch) == list(range(n)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) > 1, "the order must change between epochs"


def test_crops_are_in_bounds_and_all_eight_transforms_occur(tmp_path: Path) -> None:
    # Each pixel encodes its own position (R = x, G = y), so a crop shows where it came from.
    height, width = 40, 48
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x, y, np.full_like(x, 7)], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "coords.png")
    crops = RandomCrops(index_images(tmp_path, CROP), seed=0)
    seen = set()
    for g in range(80):
        spec = crops.sample(g)
        crop = crops[g].permute(1, 2, 0).numpy()
        assert 0 <= spec.top <= height - CROP and 0 <= spec.left <= width - CROP
        source = pixels[spec.top : spec.top + CROP, spec.left : spec.left + CROP]
        assert sorted(np.unique(crop[..., 0])) == list(range(spec.left, spec.left + CROP))
        assert sorted(np.unique(crop[..., 1])) == list(range(spec.top, spec.top + CROP))
        # The 8 flips/rotations of the source square, written independently of sreval's `dihedral`.
        candidates = [np.rot90(source, k) for k in range(4)] + [np.rot90(source, k)[:, ::-1] for k in range(4)]
        matches = [i for i, c in enumerate(candidates) if np.array_equal(crop, c)]
        assert len(matches) == 1, f"sample {g} is not exactly one flip/rotation of its source square"
        seen.add(matches[0])
    assert seen == set(range(TRANSFORMS))


def test_grayscale_images_become_three_equal_channels(tmp_path: Path) -> None:
    _save(tmp_path / "gray.png", 30, 30, mode="L")
    crop = RandomCrops(index_images(tmp_path, CROP), seed=0)[0]
    assert crop.shape == (3, CROP, CROP)
    assert torch.equal(crop[0], crop[1]) and torch.equal(crop[1], crop[2])


def test_batches_larger_than_the_set_span_epochs(images: TrainingImages) -> None:
    batches = _batches(images, batch=10, stop_step=2)  # 4 images: each batch spans 3 epochs
    assert [b.shape[0] for b in batches] == [10, 10]


def test_loader_argument_errors(images: TrainingImages) -> None:
    with pytest.raises(SrevalError, match="6 is not divisible by the 4 processes"):
        make_loader(images, batch=6, seed=0, world_size=4, workers=0)
    with pytest.raises(SrevalError, match=r"rank 2 is not in 0\.\.1"):
        make_loader(images, batch=4, seed=0, rank=2, world_size=2, workers=0)
    with pytest.raises(SrevalError, match="seed must be a non-negative"):
        make_loader(images, batch=4, seed=-1, workers=0)
    assert len(StepBatches(4, start=2, stop=7)) == 5


# --- LR inputs --------------------------------------------------------------------------------------------


def test_make_lr_is_matlab_bicubic_quarter(images: TrainingImages) -> None:
    hr = _batches(images, stop_step=1)[0]
    for variant in VARIANTS:
        lr = make_lr(hr, variant=variant)
        assert lr.shape == (4, 3, CROP // 4, CROP // 4) and lr.dtype == torch.uint8
        assert torch.equal(lr, imresize(hr, 0.25, variant=variant))
    with pytest.raises(SrevalError, match="not a multiple of the scale 4"):
        make_lr(hr[..., :-1])
    with pytest.raises(SrevalError, match="expects a uint8"):
        make_lr(hr.float())


def test_to_unit() -> None:
    x = torch.tensor([[[[0, 51, 255]]]], dtype=torch.uint8)
    assert torch.equal(to_unit(x), torch.tensor([[[[0.0, 0.2, 1.0]]]]))
    assert to_unit(x).dtype == torch.float32
    with pytest.raises(SrevalError, match="expects uint8"):
        to_unit(x.float())


# --- the real T91 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_training_root(request: pytest.FixtureRequest) -> Path:
    """SREVAL_TRAINING_ROOT, else `training/` beside the benchmark data root; must hold T91."""
    env = os.environ.get("SREVAL_TRAINING_ROOT")
    root = Path(env) if env else request.getfixturevalue("data_root").parent / "training"
    if not (root / "T91").is_dir():
        _require(f"the T91 training set at {root / 'T91'}")
    return root


def test_real_t91(real_training_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SREVAL_TRAINING_ROOT", str(real_training_root))
    folder = resolve_train_dir("T91")
    assert folder == real_training_root / "T91"
    images = index_images(folder, CROP_SRRESNET)
    assert (images.found, len(images.too_small), len(images.unreadable)) == (91, 1, 0)  # one T91 image is 78 px
    assert len(index_images(folder, CROP_ESRGAN).too_small) == 7
    hr = next(iter(make_loader(images, batch=4, seed=0, workers=0)))
    assert hr.shape == (4, 3, 96, 96)
    assert make_lr(hr).shape == (4, 3, 24, 24)


# --- on the GPU -------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_make_lr_on_cuda_equals_cpu(images: TrainingImages) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    loader = make_loader(images, batch=8, seed=0, stop_step=2, workers=2)
    assert loader.pin_memory
    for hr in loader:
        assert hr.is_pinned()
        on_gpu = make_lr(hr.to("cuda", non_blocking=True))
        assert on_gpu.device.type == "cuda"
        assert torch.equal(on_gpu.cpu(), make_lr(hr))

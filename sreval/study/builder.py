"""`sreval study create`: render every stimulus of a MOS study once into its folder, then store the study.

What a study shows (the SRGAN protocol):

* test items: each method's ×4 output for each chosen benchmark image (`hr` as a method shows the reference);
* gold items: the HR and the nearest-neighbour version of a few test images, hidden among the test items, with
  known answers (5 and 1) to check attention;
* calibration items: HR and NN versions of images from outside the test set (T91 under the training root by
  default), shown first with their intended score (5, 1) to anchor the scale.

Every stimulus becomes a PNG whose file name is a random id, in a folder of its own (default
`$SREVAL_STUDIES/NAME`, else `~/.local/share/sreval/studies/NAME`); nothing in a file name, file or stimulus id
names the method or the image. The PNG is re-encoded from pixels, so no metadata of a source file comes along.
LR inputs, NN and computed methods follow the benchmark protocol (MATLAB bicubic ×1/4, uint8), and computed
outputs are taken from and added to the benchmark's SR cache when one is given.

The files are written first and the study is stored in one transaction afterwards; if anything fails, the
folder is removed again, so a failed `create` leaves neither files nor rows.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sreval import __version__
from sreval.bench.cache import Cache
from sreval.bench.methods import Method, MethodInput, NearestNeighbour, parse_methods
from sreval.data.datasets import SCALE, Dataset, ImageEntry, load_hr, mod_crop, parse_datasets, require_files
from sreval.errors import SrevalError
from sreval.imageio import LoadedImage, load_image, pixels_sha256, save_png
from sreval.protocol import Protocol
from sreval.study.api import (
    DraftImage,
    DraftMethod,
    DraftStimulus,
    StudyDraft,
    StudyInfo,
    StudyStore,
    check_study_name,
)
from sreval.study.schedule import MIN_RETEST_GAP
from sreval.study.security import new_public_id
from sreval.train.data import find_images, resolve_train_dir

log = logging.getLogger(__name__)

#: Name of the reference "method": the HR image itself.
HR_METHOD = "hr"
#: Dataset name under which calibration images are stored.
CALIBRATION_DATASET = "calibration"
#: Training set the calibration images come from by default (by name under the training root).
DEFAULT_CALIBRATION_SET = "T91"


def study_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding study folders (explicit, then SREVAL_STUDIES, then the user data folder)."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("SREVAL_STUDIES"):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "sreval" / "studies"


class Reference(Method):
    """The HR image as a stimulus (`hr` in a study's method list), as SRGAN's MOS table rates it."""

    name = HR_METHOD
    computes_output = False

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "output": "the mod-cropped HR reference image"}

    def super_resolve(self, item: MethodInput) -> np.ndarray:
        return item.hr.pixels


def study_methods(spec: str) -> list[Method]:
    """Methods of a study: `parse_methods` specs, plus `hr` for the reference image."""
    specs = [s.strip() for s in spec.split(",") if s.strip()]
    others = ",".join(s for s in specs if s.lower() != HR_METHOD)
    methods = parse_methods(others) if others else []
    if len(specs) != len(methods) + (1 if HR_METHOD in (s.lower() for s in specs) else 0):
        raise SrevalError(f"method {HR_METHOD!r} is named twice in {spec!r}")
    if any(s.lower() == HR_METHOD for s in specs):
        methods.insert([s.lower() for s in specs].index(HR_METHOD), Reference())
    if len({m.name for m in methods}) != len(methods):
        raise SrevalError(f"two methods share a name in {spec!r}: {[m.name for m in methods]}")
    return methods


@dataclass(frozen=True)
class _Source:
    """An image the study shows in some version: HR pixels plus what the database records about it."""

    dataset: str
    name: str
    sha256: str
    hr: LoadedImage


def build_study(
    store: StudyStore,
    name: str,
    methods: str,
    datasets: str,
    *,
    data_root: Path,
    images: Sequence[str] | None = None,
    retest: float = 0.1,
    gold_images: int = 5,
    calibration_images: int = 20,
    calibration_dir: str | os.PathLike[str] | None = None,
    folder: Path | None = None,
    seed: int | None = None,
    min_retest_gap: int = MIN_RETEST_GAP,
    cache: Cache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StudyInfo:
    """Render and store a study; return what was stored. See the module docstring for what it contains.

    `images` restricts each dataset to these image names (e.g. baby, bird; a name must exist in one of the
    datasets). `gold_images` test images give an HR and an NN gold item each; `calibration_images` images of
    `calibration_dir` (a folder, or a name under SREVAL_TRAINING_ROOT; default T91) give an HR and an NN
    calibration item each. `retest` of the test items are shown twice to each rater, at least
    `min_retest_gap` positions apart. `seed` (default: random) fixes every choice, and every rater's order.
    `progress(done, total)` is called after each source image.
    """
    check_study_name(name)
    if not 0 <= retest <= 1:
        raise SrevalError(f"--retest must be a fraction from 0 to 1, got {retest}")
    if gold_images < 0 or calibration_images < 0:
        raise SrevalError("the numbers of gold and calibration images must not be negative")
    if min_retest_gap < 1:
        raise SrevalError(f"the minimum retest gap must be at least 1 position, got {min_retest_gap}")
    seed = secrets.randbits(32) if seed is None else seed
    if not 0 <= seed < 2**63:
        raise SrevalError(f"the seed must be from 0 to 2**63 - 1, got {seed}")
    if store.study_exists(name):
        raise SrevalError(f"a study named {name!r} already exists in {store.url}; choose another name")

    method_list = study_methods(methods)
    dataset_list = parse_datasets(datasets)
    entries = _select_images(dataset_list, images)
    require_files(dataset_list, data_root)
    rng = np.random.default_rng([seed, 0])
    all_entries = [(d, e) for d, chosen in entries for e in chosen]
    if gold_images > len(all_entries):
        raise SrevalError(f"{gold_images} gold images asked for, but the study has only {len(all_entries)} test images")
    gold = {
        (all_entries[int(i)][0].key, all_entries[int(i)][1].name)
        for i in rng.choice(len(all_entries), gold_images, replace=False)
    }
    calibration_files, calibration_folder = _calibration_files(calibration_dir, calibration_images, rng)
    for method in method_list:
        for dataset, chosen in entries:
            covered = {e.name for e in method.images(dataset)}
            missing = [e.name for e in chosen if e.name not in covered]
            if missing:
                raise SrevalError(
                    f"method {method.name} has no output for {dataset.key} image(s) {', '.join(missing)}; every "
                    "method must cover every image of a study (restrict the images with --images)"
                )

    target = (folder or study_root() / name).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SrevalError(f"study folder {target} already exists and is not empty; choose another --dir or name")
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        draft = _render(
            name,
            target,
            seed,
            method_list,
            entries,
            gold,
            calibration_files,
            calibration_folder,
            data_root,
            cache,
            progress,
        )
        draft.settings = {
            "methods": [m.name for m in method_list],
            "method_specs": [s.strip() for s in methods.split(",") if s.strip()],
            "datasets": [d.key for d in dataset_list],
            "images": list(images) if images else None,
            "retest": retest,
            "min_retest_gap": min_retest_gap,
            "gold_images": gold_images,
            "calibration_images": calibration_images,
            "calibration_dir": str(calibration_folder) if calibration_folder else None,
            "protocol": Protocol().as_dict(),
            "scores": {"1": "bad", "2": "poor", "3": "fair", "4": "good", "5": "excellent"},
            "sreval_version": __version__,
        }
        return store.create_study(draft)
    except BaseException:
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:
            for child in target.iterdir():
                child.unlink()
        raise


def _select_images(datasets: list[Dataset], names: Sequence[str] | None) -> list[tuple[Dataset, list[ImageEntry]]]:
    """The chosen images of each dataset (all of them without `names`); datasets left empty are dropped."""
    if not names:
        return [(d, list(d.images)) for d in datasets]
    wanted = {n.strip() for n in names if n.strip()}
    chosen = [(d, [e for e in d.images if e.name in wanted or Path(e.path).name in wanted]) for d in datasets]
    found = {e.name for _, es in chosen for e in es} | {Path(e.path).name for _, es in chosen for e in es}
    unknown = sorted(wanted - found)
    if unknown:
        raise SrevalError(
            f"image(s) {', '.join(unknown)} not in {', '.join(d.key for d in datasets)}; use manifest names such as "
            f"{', '.join(e.name for e in datasets[0].images[:3])}"
        )
    return [(d, es) for d, es in chosen if es]


def _calibration_files(
    spec: str | os.PathLike[str] | None, count: int, rng: np.random.Generator
) -> tuple[list[Path], Path | None]:
    if count == 0:
        return [], None
    folder = resolve_train_dir(spec if spec is not None else DEFAULT_CALIBRATION_SET).resolve()
    files = find_images(folder)
    if len(files) < count:
        raise SrevalError(f"{count} calibration images asked for, but {folder} holds only {len(files)}")
    picked = sorted(int(i) for i in rng.choice(len(files), count, replace=False))
    return [files[i] for i in picked], folder


def _render(
    name: str,
    folder: Path,
    seed: int,
    methods: list[Method],
    entries: list[tuple[Dataset, list[ImageEntry]]],
    gold: set[tuple[str, str]],
    calibration_files: list[Path],
    calibration_folder: Path | None,
    data_root: Path,
    cache: Cache | None,
    progress: Callable[[int, int], None] | None,
) -> StudyDraft:
    protocol = Protocol()
    nearest = NearestNeighbour()
    draft = StudyDraft(name=name, folder=folder, seed=seed, settings={})
    draft.methods = [DraftMethod(m.name, m.metadata()) for m in methods]
    total = sum(len(es) for _, es in entries) + len(calibration_files)
    done = 0
    used_names: set[str] = set()

    def add(kind: str, method: str | None, source: _Source, pixels: np.ndarray, expected: int | None) -> None:
        public_id, file_id = new_public_id(), new_public_id()
        while file_id in used_names or file_id.lower() in used_names:  # also distinct on case-blind file systems
            file_id = new_public_id()
        used_names.update((file_id, file_id.lower()))
        save_png(folder / f"{file_id}.png", pixels)
        draft.stimuli.append(
            DraftStimulus(public_id, kind, method, source.dataset, source.name, f"{file_id}.png", expected)
        )

    test_hashes: set[str] = set()
    for dataset, chosen in entries:
        for entry in chosen:
            hr = load_hr(entry, data_root)
            test_hashes.add(pixels_sha256(hr.pixels))
            source = _Source(dataset.key, entry.name, entry.sha256, hr)
            draft.images.append(DraftImage(dataset.key, entry.name, entry.sha256))
            item = MethodInput(dataset, entry, hr, protocol)
            for method in methods:
                add("test", method.name, source, _output(method, item, protocol, cache), None)
            if (dataset.key, entry.name) in gold:
                add("gold_hr", None, source, hr.pixels, 5)
                add("gold_nn", None, source, nearest.super_resolve(item), 1)
            done += 1
            if progress:
                progress(done, total)

    for path in calibration_files:
        assert calibration_folder is not None
        loaded = load_image(path)
        pixels = np.ascontiguousarray(mod_crop(loaded.pixels, SCALE))
        if pixels.shape[0] < SCALE or pixels.shape[1] < SCALE:
            raise SrevalError(f"calibration image {path} is smaller than {SCALE}x{SCALE} pixels")
        if pixels_sha256(pixels) in test_hashes:
            raise SrevalError(
                f"calibration image {path} is one of the test images; calibrate on images outside the test set"
            )
        relative = path.relative_to(calibration_folder).as_posix()
        hr = LoadedImage(path=path, pixels=pixels, sha256=loaded.sha256)
        entry = ImageEntry(CALIBRATION_DATASET, relative, relative, loaded.sha256, path.stat().st_size,
                           pixels.shape[1], pixels.shape[0], pixels.shape[2])  # fmt: skip
        pseudo = Dataset(CALIBRATION_DATASET, calibration_folder.name, SCALE, (entry,))
        source = _Source(CALIBRATION_DATASET, relative, loaded.sha256, hr)
        draft.images.append(DraftImage(CALIBRATION_DATASET, relative, loaded.sha256))
        add("calibration_hr", None, source, pixels, 5)
        add("calibration_nn", None, source, nearest.super_resolve(MethodInput(pseudo, entry, hr, protocol)), 1)
        done += 1
        if progress:
            progress(done, total)
    return draft


def _output(method: Method, item: MethodInput, protocol: Protocol, cache: Cache | None) -> np.ndarray:
    """A method's output, through the benchmark's SR cache for computed methods (same keys as `run-benchmarks`)."""
    if cache is None or not method.computes_output:
        pixels = method.super_resolve(item)
    else:
        key = Cache.sr_key(method.identity(), item.hr.sha256, protocol.key())
        cached = cache.get_sr(key)
        if cached is not None:
            pixels = cached
        else:
            pixels = method.super_resolve(item)
            cache.put_sr(key, pixels)
    if pixels.shape != item.hr.pixels.shape or pixels.dtype != np.uint8:
        raise SrevalError(
            f"{method.name} gave a {pixels.dtype} image of shape {pixels.shape} for {item.entry.dataset}/"
            f"{item.entry.name}; expected uint8 {item.hr.pixels.shape}"
        )
    return pixels

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

The folder itself (private modes, common times, rendering beside the target and moving it into place, and what a
killed `create` leaves) is `sreval.study.folder`.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sreval import __version__
from sreval.benchmark.cache import Cache
from sreval.benchmark.evaluate import method_input, produce_sr
from sreval.datasets.registry import SCALE, Dataset, ImageEntry, load_hr, mod_crop, parse_datasets, require_files
from sreval.errors import ParameterError, SrevalError
from sreval.imageio import LoadedImage, load_image, pixels_sha256, save_png
from sreval.methods.base import Method, MethodInput
from sreval.methods.baselines import NearestNeighbour
from sreval.methods.specs import parse_methods
from sreval.protocol import Protocol
from sreval.settings import study_root
from sreval.study import (
    DraftImage,
    DraftMethod,
    DraftStimulus,
    StudyDraft,
    StudyInfo,
    StudyStore,
    check_study_name,
)
from sreval.study.folder import (
    GROUP_READ_MODES,
    PRIVATE_MODES,
    UNFINISHED_MARKER,
    clear_target,
    finish_folder,
    move_into_place,
    new_partial,
    remove_stale_partials,
)
from sreval.study.schedule import MIN_RETEST_GAP
from sreval.study.security import new_public_id
from sreval.train.data import find_images, resolve_train_dir

#: Dataset name under which calibration images are stored.
CALIBRATION_DATASET = "calibration"
#: Training set the calibration images come from by default (by name under the training root).
DEFAULT_CALIBRATION_SET = "T91"


def build_study(
    store: StudyStore,
    name: str,
    methods: Sequence[str],
    datasets: Sequence[str],
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
    group_read: bool = False,
) -> StudyInfo:
    """Render and store a study; return what was stored. See the module docstring for what it contains.

    `methods` are method specs (`sreval.methods.specs`; `hr` shows the reference), `datasets` dataset names.
    `images` restricts each dataset to these image names (e.g. baby, bird; a name must exist in one of the
    datasets). `gold_images` test images give an HR and an NN gold item each; `calibration_images` images of
    `calibration_dir` (a folder, or a name under SREVAL_TRAINING_ROOT; default T91) give an HR and an NN
    calibration item each. `retest` of the test items are shown twice to each rater, at least
    `min_retest_gap` positions apart. `seed` (default: random) fixes every choice, and every rater's order.
    `progress(done, total)` is called after each stimulus. `group_read` makes the folder 0750 and its files 0640
    (default 0700 and 0600).
    """
    check_study_name(name)
    if not 0 <= retest <= 1:
        raise ParameterError("retest", f"retest must be a fraction from 0 to 1, got {retest}")
    for parameter, count in (("gold_images", gold_images), ("calibration_images", calibration_images)):
        if count < 0:
            raise ParameterError(parameter, f"{parameter} must not be negative, got {count}")
    if min_retest_gap < 1:
        raise ParameterError("min_retest_gap", f"min_retest_gap must be at least 1 position, got {min_retest_gap}")
    seed = secrets.randbits(32) if seed is None else seed
    if not 0 <= seed < 2**63:
        raise ParameterError("seed", f"seed must be from 0 to 2**63 - 1, got {seed}")
    if store.study_exists(name):
        raise SrevalError(f"a study named {name!r} already exists in {store.url}; choose another name")

    method_list = parse_methods(methods)
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
                    "method must cover every image of a study (restrict them with the images parameter)"
                )

    target = (folder or study_root() / name).expanduser().resolve()
    clear_target(target, name, store.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    replaces_empty = target.is_dir()
    partial, lock = new_partial(target)
    try:
        try:
            draft = _render(
                name,
                partial,
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
                "method_specs": [s.strip() for s in methods if s.strip()],
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
            stamp = time.time_ns() // 10**9 * 10**9  # whole seconds: every file system keeps them exactly
            finish_folder(partial, [s.path for s in draft.stimuli], GROUP_READ_MODES if group_read else PRIVATE_MODES,
                    stamp, {"study": name, "database": store.url})  # fmt: skip
            move_into_place(partial, target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        draft.folder = target
        try:
            info = store.create_study(draft)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            if replaces_empty:
                target.mkdir(exist_ok=True)
            raise
        (target / UNFINISHED_MARKER).unlink(missing_ok=True)
        os.utime(target, ns=(stamp, stamp))
        return info
    finally:
        if lock is not None:
            os.close(lock)


def _order_rng() -> random.Random:
    """Where the rendering order comes from: the operating system's random source (see the module docstring)."""
    return random.SystemRandom()


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
    """Write every stimulus into `folder`, in a random order; the draft lists them in the order the database keeps
    (images in order, each image's methods in `methods` order, then calibration), which the raters' seeded orders
    index, so the same seed gives the same orders however the files were rendered."""
    protocol = Protocol()
    nearest = NearestNeighbour()
    plan: list[_Planned] = []
    for dataset, chosen in entries:
        for entry in chosen:
            plan += [_Planned("test", m, dataset, entry, None) for m in methods]
            if (dataset.key, entry.name) in gold:
                plan += [_Planned("gold_hr", None, dataset, entry, 5), _Planned("gold_nn", None, dataset, entry, 1)]
    calibration: list[_Calibration] = []
    for path in calibration_files:
        assert calibration_folder is not None
        source = _Calibration(path, calibration_folder)
        calibration.append(source)
        plan += [_Planned("calibration_hr", None, None, source.entry, 5, source),
                 _Planned("calibration_nn", None, None, source.entry, 1, source)]  # fmt: skip
    files = _file_names(len(plan))

    order = list(range(len(plan)))
    _order_rng().shuffle(order)
    test_hashes: set[str] = set()
    calibration_hashes: dict[str, Path] = {}
    for done, index in enumerate(order, start=1):
        planned = plan[index]
        if planned.calibration is not None:
            item = planned.calibration.load(protocol)
            calibration_hashes[pixels_sha256(item.hr.pixels)] = planned.calibration.path
        else:
            assert planned.dataset is not None
            item = method_input(planned.dataset, planned.entry, load_hr(planned.entry, data_root), protocol)
            test_hashes.add(pixels_sha256(item.hr.pixels))
        if clash := sorted(str(calibration_hashes[h]) for h in test_hashes & calibration_hashes.keys()):
            raise SrevalError(
                f"calibration image {clash[0]} is one of the test images; calibrate on images outside the test set"
            )
        if planned.method is not None:
            pixels, _ = produce_sr(planned.method, item, cache)
            if pixels.shape != item.hr.pixels.shape or pixels.dtype != np.uint8:
                # A stimulus is shown as it is, so it must be the reference's size and colour (a benchmark scores
                # an RGB output of a gray image on gray values; a study cannot show it as gray).
                raise SrevalError(
                    f"{planned.method.name} gave a {pixels.dtype} image of shape {pixels.shape} for "
                    f"{item.entry.dataset}/{item.entry.name}; expected uint8 {item.hr.pixels.shape}"
                )
        else:
            pixels = item.hr.pixels if planned.kind.endswith("_hr") else nearest.super_resolve(item)
        save_png(folder / files[index], pixels)
        if progress:
            progress(done, len(plan))

    draft = StudyDraft(name=name, folder=folder, seed=seed, settings={})
    draft.methods = [DraftMethod(m.name, m.metadata()) for m in methods]
    draft.images = [DraftImage(d.key, e.name, e.sha256) for d, chosen in entries for e in chosen]
    draft.images += [DraftImage(CALIBRATION_DATASET, c.entry.name, c.entry.sha256) for c in calibration]
    draft.stimuli = [
        DraftStimulus(
            new_public_id(),
            p.kind,
            p.method.name if p.method else None,
            p.dataset.key if p.dataset else CALIBRATION_DATASET,
            p.entry.name,
            file,
            p.expected,
        )
        for p, file in zip(plan, files, strict=True)
    ]
    return draft


@dataclass(frozen=True)
class _Planned:
    """One stimulus: a test image's version by `method`, or its (or a calibration image's) HR or NN version."""

    kind: str
    method: Method | None
    dataset: Dataset | None  # None for calibration images
    entry: ImageEntry
    expected: int | None
    calibration: _Calibration | None = None


class _Calibration:
    """A calibration image: its file's hash and size are read up front, its pixels each time a stimulus needs them."""

    def __init__(self, path: Path, folder: Path) -> None:
        self.path = path
        loaded = self._loaded()
        relative = path.relative_to(folder).as_posix()
        height, width, channels = loaded.pixels.shape  # mod-cropped
        self.entry = ImageEntry(CALIBRATION_DATASET, relative, relative, loaded.sha256, path.stat().st_size,
                                width, height, channels)  # fmt: skip
        self.dataset = Dataset(CALIBRATION_DATASET, folder.name, SCALE, (self.entry,))

    def _loaded(self) -> LoadedImage:
        loaded = load_image(self.path)
        pixels = np.ascontiguousarray(mod_crop(loaded.pixels, SCALE))
        if pixels.shape[0] < SCALE or pixels.shape[1] < SCALE:
            raise SrevalError(f"calibration image {self.path} is smaller than {SCALE}x{SCALE} pixels")
        return LoadedImage(path=self.path, pixels=pixels, sha256=loaded.sha256)

    def load(self, protocol: Protocol) -> MethodInput:
        loaded = self._loaded()
        if loaded.sha256 != self.entry.sha256:
            raise SrevalError(f"calibration image {self.path} changed while the study was rendered; run it again")
        return method_input(self.dataset, self.entry, loaded, protocol)


def _file_names(count: int) -> list[str]:
    """`count` distinct random PNG names (distinct on case-blind file systems too)."""
    names: list[str] = []
    used: set[str] = set()
    while len(names) < count:
        file_id = new_public_id()
        if file_id.lower() not in used:
            used.add(file_id.lower())
            names.append(f"{file_id}.png")
    return names

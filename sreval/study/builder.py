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

Nothing about the folder tells which file shows which method either: the stimuli are rendered in a random order
(so file creation order, inode numbers and the listing order are shuffled too), and once all are written every file
gets the same access and modification time (the moment the folder was finished) and its mode, in the order of the
random file names. The order comes from a fresh random source, not from the study's seed: the seed is printed and
stored with the study, and anyone holding it could redo a seeded order; nothing needs this order to be
reproducible (the file names are not either). What cannot be hidden are the contents and sizes of the files.

The folder is private (0700, files 0600) unless `group_read` (`--group-read`) asks for 0750 and 0640, for a
rater app that runs as another user of the folder's group. The rater app must be able to read it: run it as the
user who ran `study create`, or use `group_read`.

The files are rendered into a hidden folder beside the target (`.NAME.partial-…`, on the same file system), which
is renamed into place only when it is complete; only then is the study stored, in one transaction. If anything
fails, the folder is removed again, so a failed `create` leaves neither files nor rows. A `create` killed outright
(kill -9, a power cut) cannot clean up, so it leaves nothing that blocks running the same command again: a
partial folder is locked (`flock`) while its `create` runs and the next `create` of the same study removes it once
the lock is free; and between the rename and the database row the folder holds a marker naming the study and the
database, so the next `create` of that study in that database recognises the folder as unfinished and renders it
anew.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sreval import __version__
from sreval.benchmark.cache import Cache
from sreval.datasets.registry import SCALE, Dataset, ImageEntry, load_hr, mod_crop, parse_datasets, require_files
from sreval.errors import SrevalError
from sreval.imageio import LoadedImage, load_image, pixels_sha256, save_png
from sreval.methods.base import Method, MethodInput, NearestNeighbour, parse_methods
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
from sreval.study.schedule import MIN_RETEST_GAP
from sreval.study.security import new_public_id
from sreval.train.data import find_images, resolve_train_dir

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

#: Name of the reference "method": the HR image itself.
HR_METHOD = "hr"
#: Dataset name under which calibration images are stored.
CALIBRATION_DATASET = "calibration"
#: Training set the calibration images come from by default (by name under the training root).
DEFAULT_CALIBRATION_SET = "T91"
#: Modes of a study folder and of its files: private by default, or readable by the folder's group.
PRIVATE_MODES = (0o700, 0o600)
GROUP_READ_MODES = (0o750, 0o640)
#: Infix of the hidden folder a study is rendered into (`.NAME.partial-RANDOM`, beside the study folder).
PARTIAL_INFIX = ".partial-"
#: File in a rendered study folder until its database row is written: {"study": NAME, "database": URL}.
UNFINISHED_MARKER = ".sreval-unfinished.json"


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
    group_read: bool = False,
) -> StudyInfo:
    """Render and store a study; return what was stored. See the module docstring for what it contains.

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
    _clear_target(target, name, store.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    replaces_empty = target.is_dir()
    partial, lock = _new_partial(target)
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
            stamp = time.time_ns() // 10**9 * 10**9  # whole seconds: every file system keeps them exactly
            _finish(partial, [s.path for s in draft.stimuli], GROUP_READ_MODES if group_read else PRIVATE_MODES,
                    stamp, {"study": name, "database": store.url})  # fmt: skip
            _move_into_place(partial, target)
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


def _lock(folder: Path) -> int | None:
    """An open descriptor of `folder` holding an exclusive `flock` on it, or None where there are no such locks.

    `BlockingIOError` when another process holds the lock. The lock goes with the process, however it ends.
    """
    if sys.platform == "win32":
        return None
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove_if_abandoned(folder: Path) -> bool:
    """Remove `folder` if no running process holds its lock; False if one does (or locks cannot tell)."""
    try:
        lock = _lock(folder)
    except OSError:
        return False
    if lock is None:
        return False
    try:
        shutil.rmtree(folder)
    finally:
        os.close(lock)
    return True


def _clear_target(target: Path, name: str, database: str) -> None:
    """Refuse a study folder that exists and is not empty, unless a killed `create` of this study in this database
    left it (it still holds the unfinished marker): that one is removed, to be rendered again."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return
    marker = target / UNFINISHED_MARKER
    if not target.is_dir() or not marker.is_file():
        raise SrevalError(f"study folder {target} already exists and is not empty; choose another --dir or name")
    try:
        left = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        left = {}
    if left != {"study": name, "database": database}:
        raise SrevalError(
            f"study folder {target} is an unfinished study ({marker.name}: {left or 'unreadable'}), not one of "
            f"study {name!r} in {database}; remove the folder, or choose another --dir or name"
        )
    if not _remove_if_abandoned(target):
        raise SrevalError(
            f"study folder {target} is being created by another process (or cannot be locked to check); wait for "
            "it, or remove the folder"
        )
    log.info("removed %s, left unfinished by an interrupted create of study %s", target, name)


def _remove_stale_partials(target: Path) -> None:
    """Remove the partial folders of `target` that no running `create` holds (left by a killed one)."""
    for path in target.parent.glob(f".{target.name}{PARTIAL_INFIX}*"):
        if path.is_dir() and not path.is_symlink() and _remove_if_abandoned(path):
            log.info("removed %s, left by an interrupted create", path)


def _new_partial(target: Path) -> tuple[Path, int | None]:
    """A new private, locked folder beside `target` to render into."""
    while True:
        partial = target.with_name(f".{target.name}{PARTIAL_INFIX}{secrets.token_hex(6)}")
        try:
            partial.mkdir(mode=0o700)
        except FileExistsError:
            continue
        break
    try:
        os.chmod(partial, 0o700)  # whatever the umask
        return partial, _lock(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _finish(folder: Path, files: list[str], modes: tuple[int, int], stamp: int, marker: dict[str, str]) -> None:
    """Give every file its mode and the common time `stamp` (ns), in file name order (random), so change times
    follow the random names only; then leave the unfinished marker and set the folder's own mode and times."""
    folder_mode, file_mode = modes
    for file in sorted(files):
        path = folder / file
        os.chmod(path, file_mode)
        os.utime(path, ns=(stamp, stamp))
    with open(folder / UNFINISHED_MARKER, "x", encoding="utf-8") as f:
        json.dump(marker, f)
    os.chmod(folder / UNFINISHED_MARKER, file_mode)
    os.chmod(folder, folder_mode)
    os.utime(folder, ns=(stamp, stamp))


def _move_into_place(partial: Path, target: Path) -> None:
    """Rename the finished folder to `target` (absent, or an empty folder it replaces) and make that durable
    before the database row refers to it."""
    try:
        os.replace(partial, target)
    except OSError as error:
        raise SrevalError(
            f"cannot move the finished study folder {partial} to {target}: {error.strerror or error}; --dir must "
            "be a folder that does not exist or is empty, not a mount point"
        ) from error
    if sys.platform != "win32":
        try:
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:  # some file systems cannot sync a folder; the rename is done all the same
            pass


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
            item = MethodInput(planned.dataset, planned.entry, load_hr(planned.entry, data_root), protocol)
            test_hashes.add(pixels_sha256(item.hr.pixels))
        if clash := sorted(str(calibration_hashes[h]) for h in test_hashes & calibration_hashes.keys()):
            raise SrevalError(
                f"calibration image {clash[0]} is one of the test images; calibrate on images outside the test set"
            )
        if planned.method is not None:
            pixels = _output(planned.method, item, protocol, cache)
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
        return MethodInput(self.dataset, self.entry, loaded, protocol)


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

"""Synthetic raters (and synthetic studies for them): load-test a study's storage and give analyses data with a
known truth.

Raters follow `rater_model` (bias, inconsistency and scores on the ACR scale, as the power analysis simulates
them); stimulus s has a true quality q_s, drawn around a level set by what the stimulus shows (HR 4.5, NN 1.3,
bicubic 2.0, any other method 3.0) with N(0, σ_q) noise. Calibration and gold items are answered by the same
model.

Raters are invited with `simulated=True` and rate through the very calls the app uses (`give_consent`,
`next_item`, `submit`), several at once in a thread pool, so the run also exercises concurrent submits.
Their ratings carry the `simulated` flag and `export` / `status` leave them out unless asked.
Each rater's numbers come from its own seeded stream, so a simulation is reproducible whatever the thread
scheduling (only timestamps differ).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sreval.errors import ParameterError, SrevalError
from sreval.imageio import save_png
from sreval.study import DraftImage, DraftMethod, DraftStimulus, StudyDraft, StudyStore
from sreval.study.rater_model import RaterModel, rate
from sreval.study.security import new_public_id
from sreval.vocabulary import StimulusKind

#: Mean true quality by what a stimulus shows; methods not listed get `OTHER_QUALITY`.
QUALITY_LEVELS: dict[str, float] = {"hr": 4.5, "nn": 1.3, "bicubic": 2.0}
OTHER_QUALITY = 3.0


@dataclass(frozen=True)
class SimulatedRater:
    """A synthetic rater's id and its generative parameters (the truth an analysis should recover)."""

    rater: str
    bias: float
    inconsistency: float
    ratings: int


@dataclass(frozen=True)
class SimulationResult:
    seed: int
    raters: list[SimulatedRater]
    true_quality: dict[str, float]  # public stimulus id → q_s
    seconds: float

    @property
    def ratings(self) -> int:
        return sum(r.ratings for r in self.raters)


def simulate(
    store: StudyStore,
    study: str,
    *,
    raters: int = 20,
    workers: int = 8,
    seed: int | None = None,
    bias_sd: float = 0.5,
    inconsistency_sd: float = 0.5,
    quality_sd: float = 0.3,
) -> SimulationResult:
    """Invite `raters` simulated raters to `study` and let them rate everything, `workers` at a time."""
    if raters < 1:
        raise ParameterError("raters", f"raters must be at least 1, got {raters}")
    if workers < 1:
        raise ParameterError("workers", f"workers must be at least 1, got {workers}")
    if not (math.isfinite(quality_sd) and quality_sd >= 0):
        raise ParameterError("quality_sd", f"quality_sd must be a finite number ≥ 0, got {quality_sd}")
    model = RaterModel(bias_sd=bias_sd, inconsistency_sd=inconsistency_sd)
    seed = secrets.randbits(32) if seed is None else seed
    stimuli = store.stimuli(study)
    rng = np.random.default_rng([seed, 0])
    levels = [QUALITY_LEVELS.get(str(m), OTHER_QUALITY) for m in stimuli["method"]]
    quality = {
        str(s): float(q)
        for s, q in zip(stimuli["public_id"], levels + rng.normal(0, quality_sd, len(levels)), strict=True)
    }
    invitations = store.invite(study, raters, simulated=True)

    def run(index: int) -> SimulatedRater:
        rater, token = invitations[index]
        own = np.random.default_rng([seed, 1, index])
        bias, inconsistency = model.draw(own)
        store.give_consent(token)
        count = 0
        while (item := store.next_item(token)) is not None:
            if count > item.total:
                raise SrevalError(f"simulated rater {rater} is not getting anywhere (a bug): stopped")
            score = int(rate(quality[item.stimulus], bias, inconsistency, own.standard_normal()))
            response_ms = int(own.lognormal(math.log(2500), 0.4))
            store.submit(token, item.stimulus, item.repetition, score, response_ms)
            count += 1
        return SimulatedRater(rater, float(bias), float(inconsistency), count)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simulated-rater") as pool:
        results = list(pool.map(run, range(len(invitations))))
    return SimulationResult(seed, results, quality, time.perf_counter() - started)


def synthetic_study(store: StudyStore, name: str, folder: Path, items: int, seed: int = 0) -> None:
    """A study of `items` test stimuli (4 methods over items/4 images), 2 gold and 4 calibration items, each a
    small random PNG in `folder`; stored with `create_study` like a built one."""
    rng = np.random.default_rng(seed)
    methods = [f"m{i}" for i in range(4)]
    n_images = max(1, -(-items // len(methods)))
    draft = StudyDraft(name, folder, seed, {"retest": 0.0}, [DraftMethod(m, {}) for m in methods])
    stimuli: list[DraftStimulus] = []

    def add(kind: str, method: str | None, dataset: str, image: str, expected: int | None) -> None:
        name = f"s{len(stimuli):04d}"
        save_png(folder / f"{name}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        stimuli.append(DraftStimulus(new_public_id(), kind, method, dataset, image, f"{name}.png", expected))

    for i in range(n_images):
        draft.images.append(DraftImage("synthetic", f"img{i}", hashlib.sha256(f"img{i}".encode()).hexdigest()))
    for i in range(items):
        add(StimulusKind.TEST.value, methods[i % len(methods)], "synthetic", f"img{i // len(methods)}", None)
    for kind in (StimulusKind.GOLD_HR, StimulusKind.GOLD_NN):
        add(kind.value, None, "synthetic", "img0", kind.expected_score)
    for i in range(2):
        draft.images.append(DraftImage("calibration", f"cal{i}", hashlib.sha256(f"cal{i}".encode()).hexdigest()))
        for kind in (StimulusKind.CALIBRATION_HR, StimulusKind.CALIBRATION_NN):
            add(kind.value, None, "calibration", f"cal{i}", kind.expected_score)
    draft.stimuli = stimuli
    store.create_study(draft)

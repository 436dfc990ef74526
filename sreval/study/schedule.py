"""Per-rater presentation order: a pure function of the stimuli and one seed, so every order can be rebuilt.

A rater's seed comes from the study seed and the rater's number (`rater_seed`); the order built from it is
stored in `study_schedule` when the rater is invited, and `build_schedule` with the stored seed gives it back.

The order has two phases:

* calibration: every calibration item once, shuffled (the app shows each with its intended score);
* test: every test and gold item once, shuffled, with the gold items spread out (one per equal stretch of the
  test items, at a random place in it), and a `retest` fraction of the test items shown a second time.
  Each second showing is at least `min_gap` positions from the first (when the sequence is too short for
  that, as far apart as it allows; only a sequence of one item forces neighbours). Positions are drawn at
  random among those allowed, so the gap is usually much larger than the minimum. Whichever showing comes
  first is repetition 1.

Which test items are repeated is drawn per rater: over many raters every item gets retest pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Phase = Literal["calibration", "test"]

#: Default smallest distance (in positions) between the two showings of a retest item.
MIN_RETEST_GAP = 5


@dataclass(frozen=True)
class Slot:
    """One position of a schedule: which stimulus (the caller's key), which showing, which phase."""

    stimulus: int
    repetition: int
    phase: Phase


def rater_seed(study_seed: int, number: int) -> int:
    """The seed of rater `number` (1, 2, ...) of a study: independent streams for every rater, 32 bits."""
    return int(np.random.SeedSequence([study_seed, number]).generate_state(1, dtype=np.uint32)[0])


def retest_count(n_test: int, fraction: float) -> int:
    """How many test items a rater sees twice: `fraction` of them, rounded, at least one when `fraction` > 0."""
    if n_test == 0 or fraction <= 0:
        return 0
    return min(n_test, max(1, math.floor(fraction * n_test + 0.5)))


def build_schedule(
    calibration: Sequence[int],
    test: Sequence[int],
    gold: Sequence[int],
    *,
    seed: int,
    retest: float,
    min_gap: int = MIN_RETEST_GAP,
) -> list[Slot]:
    """The presentation order for one rater. The result depends only on the arguments (keep the key lists in a
    fixed order, e.g. by database id); the same seed gives the same order on every machine."""
    if not 0 <= retest <= 1:
        raise ValueError(f"retest must be a fraction in [0, 1], got {retest}")
    if min_gap < 1:
        raise ValueError(f"min_gap must be at least 1, got {min_gap}")
    rng = np.random.default_rng(seed)
    slots = [Slot(calibration[int(i)], 1, "calibration") for i in rng.permutation(len(calibration))]

    sequence = [test[int(i)] for i in rng.permutation(len(test))]
    golds = [gold[int(i)] for i in rng.permutation(len(gold))]
    n = len(sequence)
    for k in reversed(range(len(golds))):  # from the last stretch backwards, so earlier bounds stay valid
        low, high = k * n // len(golds), (k + 1) * n // len(golds)
        sequence.insert(int(rng.integers(low, high + 1)) if high > low else low, golds[k])

    repeated = rng.choice(len(test), size=retest_count(len(test), retest), replace=False)
    for index in repeated:
        key = test[int(index)]
        first = sequence.index(key)
        length = len(sequence)
        # Inserting at j puts the copy j - first positions after the original, or first + 1 - j before it.
        gap = min(min_gap, max(length - first, first + 1))
        allowed = [j for j in range(length + 1) if (j - first if j > first else first + 1 - j) >= gap]
        sequence.insert(int(allowed[int(rng.integers(len(allowed)))]), key)

    shown: set[int] = set()
    for key in sequence:
        slots.append(Slot(key, 2 if key in shown else 1, "test"))
        shown.add(key)
    return slots

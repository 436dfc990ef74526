"""The words of a MOS study, defined once: the ACR scale, the kinds of stimulus, and the gold rule.

The study store, the rater app, the simulated raters, the analysis and the report all use these names; none of
them spells a kind, a score bound or the gold rule out again.
"""

from __future__ import annotations

from enum import StrEnum

import pandas as pd

#: The absolute category rating scale (ITU-T P.910 ACR, as in the SRGAN study): integer scores, best last.
SCORE_LABELS: dict[int, str] = {1: "bad", 2: "poor", 3: "fair", 4: "good", 5: "excellent"}
LOWEST_SCORE = min(SCORE_LABELS)
HIGHEST_SCORE = max(SCORE_LABELS)
SCORES = tuple(SCORE_LABELS)
#: The scale's bounds as floats, for checking ratings read from files.
ACR_SCALE = (float(LOWEST_SCORE), float(HIGHEST_SCORE))


class StimulusKind(StrEnum):
    """What a stimulus is. `test` items are rated for the study; the others have a known answer: gold items
    (HR / NN versions of test images, hidden among the test items) check attention, calibration items (HR / NN
    versions of images outside the test set, shown first with their intended score) anchor the scale."""

    TEST = "test"
    GOLD_HR = "gold_hr"
    GOLD_NN = "gold_nn"
    CALIBRATION_HR = "calibration_hr"
    CALIBRATION_NN = "calibration_nn"

    @property
    def group(self) -> str:
        """`test`, `gold` or `calibration`: the part of a rater's schedule the stimulus belongs to."""
        return self.value.partition("_")[0]

    @property
    def is_gold(self) -> bool:
        return self.group == "gold"

    @property
    def is_calibration(self) -> bool:
        return self.group == "calibration"

    @property
    def shows_hr(self) -> bool:
        return self in (StimulusKind.GOLD_HR, StimulusKind.CALIBRATION_HR)

    @property
    def expected_score(self) -> int | None:
        """The score an attentive rater gives (the top of the scale for HR, the bottom for NN); None for test."""
        if self is StimulusKind.TEST:
            return None
        return HIGHEST_SCORE if self.shows_hr else LOWEST_SCORE


STIMULUS_KINDS: tuple[str, ...] = tuple(kind.value for kind in StimulusKind)
GOLD_KINDS: tuple[str, ...] = tuple(kind.value for kind in StimulusKind if kind.is_gold)
CALIBRATION_KINDS: tuple[str, ...] = tuple(kind.value for kind in StimulusKind if kind.is_calibration)

#: When a gold item counts as failed (an inattentive or confused answer): an HR image rated in the lower two
#: categories, or an NN image rated in the upper two.
GOLD_HR_FAILS_AT_OR_BELOW = 2
GOLD_NN_FAILS_AT_OR_ABOVE = 4
GOLD_RULE = (
    f"a gold HR item rated {GOLD_HR_FAILS_AT_OR_BELOW} or lower, or a gold NN item rated "
    f"{GOLD_NN_FAILS_AT_OR_ABOVE} or higher, is a failed gold item"
)


def failed_gold(kinds: pd.Series, scores: pd.Series) -> pd.Series:
    """True where a rating (kind, score) is a failed gold item by `GOLD_RULE`; False for every other kind."""
    hr_low = (kinds == StimulusKind.GOLD_HR.value) & (scores <= GOLD_HR_FAILS_AT_OR_BELOW)
    nn_high = (kinds == StimulusKind.GOLD_NN.value) & (scores >= GOLD_NN_FAILS_AT_OR_ABOVE)
    return hr_low | nn_high

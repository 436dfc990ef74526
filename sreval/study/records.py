"""The records of the study store: what its calls take and return (plain, frozen data; no database types).

`StudyDraft` and its parts describe a study to create; `StudyInfo` and `StudyStatus` are the admin's view;
`RaterView`, `Item` and `SubmitResult` are all a rater's requests ever get back (nothing in them names a method
or a source image); `RequestRefused` says why a rater request was refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, NamedTuple

import pandas as pd

from sreval.errors import SrevalError
from sreval.study.schedule import Phase
from sreval.vocabulary import GOLD_RULE

#: Columns of `export`, in order.
EXPORT_COLUMNS = (
    "rater", "stimulus", "method", "dataset", "image", "repetition", "score", "response_ms", "created_at", "kind",
    "simulated",
)  # fmt: skip


class Refusal(StrEnum):
    """Why a rater request was refused (`RequestRefused.reason`); the app can branch on it."""

    INVALID_TOKEN = "invalid_token"
    STUDY_CLOSED = "study_closed"
    NO_CONSENT = "no_consent"
    FINISHED = "finished"
    BAD_SCORE = "bad_score"
    BAD_REPETITION = "bad_repetition"
    BAD_RESPONSE_TIME = "bad_response_time"
    UNKNOWN_STIMULUS = "unknown_stimulus"
    NOT_DUE = "not_due"
    CONFLICT = "conflict"


class RequestRefused(SrevalError):
    """A rater request the store refused; nothing was changed. The message may be shown to the rater."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RaterView:
    """What a rater's link stands for: enough for the app to pick the page to show."""

    study: str
    rater: str  # public rater id, e.g. r07
    closed: bool  # the study takes no more ratings
    consent_given: bool
    done: int  # items rated, calibration included
    total: int  # items in the schedule
    finished: bool


@dataclass(frozen=True)
class Item:
    """The item a rater is due to rate. Nothing here names the method or the source image: show `image_path`
    without caption, alt text or file name; send back `stimulus` and `repetition` with the score."""

    stimulus: str  # public stimulus id (random)
    repetition: int  # 1, or 2 for the second showing of a retest item
    phase: Phase  # "calibration" first, then "test"
    position: int  # 0-based position in the rater's schedule (= items already rated)
    total: int  # schedule length
    phase_position: int  # 0-based position within the phase
    phase_total: int  # items in the phase
    image_path: Path  # the PNG to show (inside the study folder)
    anchor: int | None  # calibration: the score this image stands for (its expected score); None in tests


@dataclass(frozen=True)
class SubmitResult:
    """A stored (or already stored, identical) rating and the rater's progress after it."""

    status: Literal["recorded", "already_recorded"]
    done: int
    total: int
    finished: bool


class Anchor(NamedTuple):
    """A calibration stimulus shown as an example of one end of the scale (`calibration_anchors`)."""

    score: int  # the score it stands for
    stimulus: str  # public stimulus id


class Invitation(NamedTuple):
    """A new rater: public id and the token for their link (shown once; the database keeps only its hash)."""

    rater: str
    token: str


@dataclass(frozen=True)
class DraftMethod:
    name: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class DraftImage:
    dataset: str  # dataset key, or "calibration"
    name: str
    sha256: str


@dataclass(frozen=True)
class DraftStimulus:
    public_id: str
    kind: str  # one of vocabulary.STIMULUS_KINDS
    method: str | None  # a DraftMethod name for test items, None otherwise
    dataset: str
    image: str
    path: str  # PNG file relative to the study folder
    expected: int | None  # the kind's `StimulusKind.expected_score`


@dataclass
class StudyDraft:
    """A study whose files are rendered (see `builder.build_study`), ready for `create_study`."""

    name: str
    folder: Path
    seed: int
    settings: dict[str, Any]
    methods: list[DraftMethod] = field(default_factory=list)
    images: list[DraftImage] = field(default_factory=list)
    stimuli: list[DraftStimulus] = field(default_factory=list)


@dataclass(frozen=True)
class StudyInfo:
    """A study's definition and size."""

    name: str
    created_at: datetime
    closed_at: datetime | None
    folder: Path
    seed: int
    settings: dict[str, Any]
    methods: list[str]
    stimuli: dict[str, int]  # count per kind
    raters: int


@dataclass(frozen=True)
class StudyStatus:
    """Progress of a study (see `status`)."""

    info: StudyInfo
    #: One row per rater: rater, simulated, created_at, consent_at, started_at, finished_at, done, total,
    #: gold_failures (`vocabulary.failed_gold`), calibration_misses (calibration answers other than the intended
    #: score).
    raters: pd.DataFrame
    #: One row per method (test items only): method, done, total, mean_score (the plain mean of the ratings so
    #: far, a progress figure; the analysis gives MOS with intervals).
    methods: pd.DataFrame
    #: One row per failed gold rating: rater, stimulus, kind, dataset, image, repetition, score, expected.
    gold_failures: pd.DataFrame
    #: One row per stimulus the app could not show (`report_problem`): stimulus, kind, method,
    #: dataset, image, problem (the latest report), reports, raters, first_at, last_at.
    problems: pd.DataFrame
    gold_rule: str = GOLD_RULE

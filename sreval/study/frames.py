"""The study store's tables as DataFrames: every scheduled item with its rating, the raters, the reported
problems. `status` and `export` are made from them."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection, Select, select

from sreval.db.tables import Problem, Rater, Rating, ScheduleItem, Stimulus, StudyImage, StudyMethod
from sreval.vocabulary import StimulusKind


def method_label(kind: str, method: str | None) -> str:
    """The method column of exports: the method's name for test items, `hr` / `nn` for the others."""
    if kind == StimulusKind.TEST and method is not None:
        return method
    return "hr" if StimulusKind(kind).shows_hr else "nn"


def items_frame(conn: Connection, study_id: int) -> pd.DataFrame:
    """Every schedule position of a study with its rating (if any): the table status and export are made from."""
    query = (
        select(
            Rater.public_id,
            Rater.number,
            Rater.simulated,
            ScheduleItem.position,
            ScheduleItem.phase,
            Stimulus.public_id,
            Stimulus.kind,
            StudyMethod.name,
            StudyImage.dataset,
            StudyImage.name,
            ScheduleItem.repetition,
            Stimulus.expected,
            Rating.score,
            Rating.response_ms,
            Rating.created_at,
        )
        .join(Rater, Rater.id == ScheduleItem.rater_id)
        .join(Stimulus, Stimulus.id == ScheduleItem.stimulus_id)
        .join(StudyImage, StudyImage.id == Stimulus.image_id)
        .outerjoin(StudyMethod, StudyMethod.id == Stimulus.method_id)
        .outerjoin(
            Rating,
            (Rating.rater_id == ScheduleItem.rater_id)
            & (Rating.stimulus_id == ScheduleItem.stimulus_id)
            & (Rating.repetition == ScheduleItem.repetition),
        )
        .where(Rater.study_id == study_id)
        .order_by(Rater.number, ScheduleItem.position)
    )
    columns = [
        "rater", "number", "simulated", "position", "phase", "stimulus", "kind", "method", "dataset", "image",
        "repetition", "expected", "score", "response_ms", "created_at",
    ]  # fmt: skip
    rows = [tuple(r) for r in conn.execute(query)]
    frame = pd.DataFrame(rows, columns=columns)
    frame["method"] = [method_label(k, m) for k, m in zip(frame["kind"], frame["method"], strict=True)]
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame.astype(
        {"simulated": "bool", "expected": "Int64", "score": "Int64", "response_ms": "Int64", "repetition": "int64"}
    )


def described_stimuli(*columns: Any) -> Select[Any]:
    """Stimuli with what describes them to the admin: public id, kind, method name (NULL for HR and NN items),
    dataset and image, followed by `columns`."""
    return (
        select(Stimulus.public_id, Stimulus.kind, StudyMethod.name, StudyImage.dataset, StudyImage.name, *columns)
        .join(StudyImage, StudyImage.id == Stimulus.image_id)
        .outerjoin(StudyMethod, StudyMethod.id == Stimulus.method_id)
    )


def problems_frame(conn: Connection, study_id: int) -> pd.DataFrame:
    """The problems reported for a study, one row per stimulus (see `StudyStatus.problems`)."""
    query = (
        described_stimuli(Problem.problem, Problem.rater_id, Problem.created_at)
        .join(Problem, Problem.stimulus_id == Stimulus.id)
        .where(Stimulus.study_id == study_id)
        .order_by(Problem.id)
    )
    reports = pd.DataFrame(
        [tuple(r) for r in conn.execute(query)],
        columns=["stimulus", "kind", "method", "dataset", "image", "problem", "rater", "created_at"],
    )
    reports["method"] = [method_label(k, m) for k, m in zip(reports["kind"], reports["method"], strict=True)]
    reports["created_at"] = pd.to_datetime(reports["created_at"], utc=True)
    grouped = reports.groupby("stimulus", sort=False)
    frame = grouped[["kind", "method", "dataset", "image", "problem"]].last()
    frame["reports"] = grouped.size()
    frame["raters"] = grouped["rater"].nunique()
    frame["first_at"] = grouped["created_at"].min()
    frame["last_at"] = grouped["created_at"].max()
    return frame.reset_index().astype({"reports": "int64", "raters": "int64"})


def raters_frame(conn: Connection, study_id: int) -> pd.DataFrame:
    query = (
        select(
            Rater.public_id, Rater.simulated, Rater.created_at, Rater.consent_at, Rater.started_at, Rater.finished_at
        )
        .where(Rater.study_id == study_id)
        .order_by(Rater.number)
    )
    columns = ["rater", "simulated", "created_at", "consent_at", "started_at", "finished_at"]
    frame = pd.DataFrame([tuple(r) for r in conn.execute(query)], columns=columns)
    for column in columns[2:]:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.astype({"simulated": "bool"})

"""Ratings for the analyses: load them (long CSV or the study store), check them, and pick what is analysed.

One table in long format, one row per answer: `rater, stimulus, method, dataset, image, repetition, score`,
plus `kind` (one of `vocabulary.STIMULUS_KINDS`) and `simulated`. A CSV needs `rater,
method, dataset, image, score`; `stimulus` defaults to `method/dataset/image`, `repetition` to 1, `kind` to
test and `simulated` to false; other columns (`response_ms`, `created_at`, ...) are ignored. `sreval study
export` writes exactly this format.

What is analysed: test items of real raters. Gold items (attention checks), calibration answers
(anchors shown before the test) and simulated raters are left out unless asked for; gold items are still
used to count each rater's failed gold items (`gold_failures`, by `vocabulary.GOLD_RULE`).

Checks, each a `SrevalError` naming the bad rows: the columns are there, scores are finite numbers on the
scale (`vocabulary.ACR_SCALE`, the SRGAN protocol's; `scale=None` accepts any numeric scale, e.g. SUREAL's
0–100 datasets), repetitions are integers ≥ 1, no (rater, stimulus, repetition) is answered twice, and a stimulus
always shows the same method, dataset and image.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from sreval.errors import ParameterError, SrevalError, shown
from sreval.vocabulary import ACR_SCALE, CALIBRATION_KINDS, GOLD_KINDS, STIMULUS_KINDS, StimulusKind, failed_gold

#: Columns of the analysed table, in order.
COLUMNS = ("rater", "stimulus", "method", "dataset", "image", "repetition", "score", "kind", "simulated")
#: Columns a ratings CSV must have.
REQUIRED_COLUMNS = ("rater", "method", "dataset", "image", "score")
_EXAMPLES = 5


def _rows(mask: pd.Series | np.ndarray, frame: pd.DataFrame) -> str:
    """CSV line numbers (header = line 1) of the first few rows in `mask`."""
    index = frame.index[np.asarray(mask, dtype=bool)]
    shown = ", ".join(str(int(i) + 2) for i in index[:_EXAMPLES])
    more = f" and {len(index) - _EXAMPLES} more" if len(index) > _EXAMPLES else ""
    return f"line {shown}{more}" if len(index) == 1 else f"lines {shown}{more}"


def _text_column(frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    missing = values.isna() | (values.astype(str).str.strip() == "")
    if missing.any():
        raise SrevalError(f"ratings: empty {column!r} on {_rows(missing, frame)}")
    return values.astype(str).str.strip()


def _bool_column(values: pd.Series, frame: pd.DataFrame) -> pd.Series:
    if values.dtype == bool:
        return values
    text = values.astype(str).str.strip().str.lower()
    known = text.isin(["true", "false", "1", "0"])
    if not known.all():
        raise SrevalError(
            f"ratings: 'simulated' must be true or false, not {shown(values[~known].iloc[0])} ({_rows(~known, frame)})"
        )
    return text.isin(["true", "1"])


def validate_ratings(frame: pd.DataFrame, *, scale: tuple[float, float] | None = ACR_SCALE) -> pd.DataFrame:
    """Check a long ratings table and return it with `COLUMNS` only, typed (score float, repetition int).

    `scale` = (lowest, highest) allowed score, or None for any finite number."""
    if scale is not None and not (math.isfinite(scale[0]) and math.isfinite(scale[1]) and scale[0] < scale[1]):
        raise ParameterError("scale", f"scale needs finite lowest < highest, got {scale!r}")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SrevalError(
            f"ratings: missing column(s) {', '.join(missing)}; needed: {', '.join(REQUIRED_COLUMNS)} "
            "(optional: stimulus, repetition, kind, simulated)"
        )
    frame = frame.reset_index(drop=True)
    out = pd.DataFrame(index=frame.index)
    for column in ("rater", "method", "dataset", "image"):
        out[column] = _text_column(frame, column)
    if "stimulus" in frame.columns:
        out["stimulus"] = _text_column(frame, "stimulus")
    else:
        out["stimulus"] = out["method"] + "/" + out["dataset"] + "/" + out["image"]

    score = pd.to_numeric(frame["score"], errors="coerce").astype("float64")
    bad = pd.Series(~np.isfinite(score.to_numpy()), index=frame.index)
    if bad.any():
        raise SrevalError(
            f"ratings: score must be a number, not {shown(frame['score'][bad].iloc[0])} ({_rows(bad, frame)})"
        )
    if scale is not None:
        low, high = scale
        outside = (score < low) | (score > high)
        if outside.any():
            raise SrevalError(
                f"ratings: score {score[outside].iloc[0]:g} is outside the scale {low:g}..{high:g} "
                f"({_rows(outside, frame)}); pass another scale for data on another scale"
            )
    out["score"] = score

    if "repetition" in frame.columns:
        repetition = pd.to_numeric(frame["repetition"], errors="coerce")
        not_count = ~(np.isfinite(repetition) & (repetition >= 1) & (repetition == np.floor(repetition)))
        if not_count.any():
            raise SrevalError(
                f"ratings: repetition must be an integer ≥ 1, not {shown(frame['repetition'][not_count].iloc[0])} "
                f"({_rows(not_count, frame)})"
            )
        out["repetition"] = repetition.astype("int64")
    else:
        out["repetition"] = 1

    if "kind" in frame.columns:
        kind = frame["kind"].fillna(StimulusKind.TEST.value).astype(str).str.strip()
        unknown = ~kind.isin(STIMULUS_KINDS)
        if unknown.any():
            raise SrevalError(
                f"ratings: kind {kind[unknown].iloc[0]!r} is not one of {', '.join(STIMULUS_KINDS)} "
                f"({_rows(unknown, frame)})"
            )
        out["kind"] = kind
    else:
        out["kind"] = StimulusKind.TEST.value
    out["simulated"] = _bool_column(frame["simulated"], frame) if "simulated" in frame.columns else False

    twice = out.duplicated(["rater", "stimulus", "repetition"], keep=False)
    if twice.any():
        first = out[twice].iloc[0]
        raise SrevalError(
            f"ratings: rater {first['rater']} answered stimulus {first['stimulus']} repetition "
            f"{first['repetition']} more than once ({_rows(twice, frame)})"
        )
    shows = out.groupby("stimulus")[["method", "dataset", "image", "kind"]].nunique()
    ambiguous = shows[(shows > 1).any(axis=1)]
    if not ambiguous.empty:
        raise SrevalError(
            f"ratings: stimulus {ambiguous.index[0]} appears with different method, dataset, image or kind"
        )
    return out.loc[:, list(COLUMNS)]


def read_ratings_csv(path: Path, *, scale: tuple[float, float] | None = ACR_SCALE) -> pd.DataFrame:
    """Every rating of a long CSV (all kinds, simulated ones too), checked; see `validate_ratings`."""
    try:
        frame = pd.read_csv(path, dtype={"rater": str, "stimulus": str, "method": str, "dataset": str, "image": str})
    except FileNotFoundError:
        raise SrevalError(f"ratings file {path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SrevalError(f"cannot read ratings file {path}: {exc}") from exc
    if frame.empty:
        raise SrevalError(f"ratings file {path} has no ratings")
    return validate_ratings(frame, scale=scale)


def select_ratings(
    ratings: pd.DataFrame,
    *,
    include_gold: bool = False,
    include_calibration: bool = False,
    include_simulated: bool = False,
) -> pd.DataFrame:
    """The ratings to analyse: test items of real raters, plus the kinds asked for."""
    keep = ratings["kind"] == StimulusKind.TEST.value
    if include_gold:
        keep |= ratings["kind"].isin(GOLD_KINDS)
    if include_calibration:
        keep |= ratings["kind"].isin(CALIBRATION_KINDS)
    if not include_simulated:
        keep &= ~ratings["simulated"]
    chosen = ratings[keep].reset_index(drop=True)
    if chosen.empty:
        if include_simulated:
            raise SrevalError("no ratings left to analyse")
        # Named as a parameter so that the command line can say which of its flags includes them.
        raise ParameterError(
            "include_simulated",
            "no ratings left to analyse: simulated raters are left out; give include_simulated to analyse a simulation",
        )
    return chosen


def gold_failures(ratings: pd.DataFrame) -> pd.Series:
    """Failed gold items per rater (every rater of `ratings`; NaN when the data has no gold items at all), by
    `vocabulary.GOLD_RULE`, the rule the study store counts with."""
    raters = pd.Index(sorted(ratings["rater"].unique()), name="rater")
    gold = ratings[ratings["kind"].isin(GOLD_KINDS)]
    if gold.empty:
        return pd.Series(np.nan, index=raters, name="gold_failures")
    counts = failed_gold(gold["kind"], gold["score"]).groupby(gold["rater"]).sum()
    return counts.reindex(raters, fill_value=0).astype("float64").rename("gold_failures")


def rater_means(ratings: pd.DataFrame) -> pd.DataFrame:
    """One score per rater × method × dataset × image: the mean of the rater's repetitions (and of several
    stimuli showing the same thing, e.g. a test and a gold HR item)."""
    keys = ["rater", "method", "dataset", "image"]
    return ratings.groupby(keys, sort=True)["score"].mean().reset_index()

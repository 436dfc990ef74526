"""The checks of the study store's arguments, before anything touches the database.

Rater requests that fail a check are refused (`RequestRefused`, with a `Refusal` the app can branch on); admin
arguments that fail one raise `ParameterError` naming the parameter.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from pathlib import Path

from sreval.errors import ParameterError, SrevalError
from sreval.study.records import Refusal, RequestRefused, StudyDraft
from sreval.study.security import MAX_TOKEN_LENGTH, token_sha256
from sreval.vocabulary import HIGHEST_SCORE, LOWEST_SCORE, STIMULUS_KINDS, StimulusKind

#: Largest response time stored (the column is a 32-bit integer: about 24 days).
MAX_RESPONSE_MS = 2**31 - 1
#: Study names double as folder names.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MAX_PUBLIC_ID = 64


def as_int(value: object) -> int | None:
    """`value` as an int when it is an integer (Python or NumPy, not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def check_score(score: object) -> int:
    """`score` as an int if it is a whole score of the ACR scale, else `RequestRefused` (BAD_SCORE)."""
    value = as_int(score)
    if value is None or not LOWEST_SCORE <= value <= HIGHEST_SCORE:
        message = f"a score must be a whole number from {LOWEST_SCORE} to {HIGHEST_SCORE}, got {score!r}"
        raise RequestRefused(Refusal.BAD_SCORE, message)
    return value


def check_repetition(repetition: object) -> int:
    value = as_int(repetition)
    if value is None or value not in (1, 2):
        raise RequestRefused(Refusal.BAD_REPETITION, f"repetition must be 1 or 2, got {repetition!r}")
    return value


def check_response_ms(response_ms: object) -> int | None:
    if response_ms is None:
        return None
    ok = isinstance(response_ms, numbers.Real) and not isinstance(response_ms, bool)
    value = float(response_ms) if ok else math.nan  # type: ignore[arg-type]
    if not (math.isfinite(value) and 0 <= value <= MAX_RESPONSE_MS):
        message = f"response time must be milliseconds from 0 to {MAX_RESPONSE_MS}, got {response_ms!r}"
        raise RequestRefused(Refusal.BAD_RESPONSE_TIME, message)
    return round(value)


def check_public_id(stimulus: object) -> str:
    """`stimulus` if it can be a public stimulus id, else `RequestRefused` (UNKNOWN_STIMULUS)."""
    if not isinstance(stimulus, str) or not 0 < len(stimulus) <= _MAX_PUBLIC_ID:
        raise RequestRefused(Refusal.UNKNOWN_STIMULUS, "this item is not part of your study")
    return stimulus


def token_key(token: object) -> str | None:
    """The stored hash of a well-formed token, None for anything that cannot be one of ours."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
        return None
    return token_sha256(token)


def check_study_name(name: str) -> str:
    """`name` if it can name a study (and its folder): letters, digits, '.', '_', '-', at most 100 characters."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ParameterError(
            "name",
            f"study name {name!r} is not allowed: use 1 to 100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    return name


def inside(folder: Path, relative: str) -> Path:
    """The stimulus file `relative` of a study folder, refusing anything that would leave the folder."""
    # realpath, not Path.resolve: a symlink loop in the folder must make the file unreadable (reported when it is
    # shown), not raise here.
    base = Path(os.path.realpath(folder))
    path = Path(os.path.realpath(base / relative))
    if not path.is_relative_to(base) or path == base:
        raise SrevalError(f"stimulus path {relative!r} leaves the study folder {base}; the database was altered")
    return path


def check_draft(draft: StudyDraft) -> None:
    """A draft whose methods, images and stimuli fit together and whose files exist, else `ParameterError`."""
    methods = {m.name for m in draft.methods}
    images = {(i.dataset, i.name) for i in draft.images}

    def bad(message: str) -> ParameterError:
        return ParameterError("draft", message)

    if len(methods) != len(draft.methods):
        raise bad(f"study {draft.name!r} names a method twice")
    if len(images) != len(draft.images):
        raise bad(f"study {draft.name!r} has an image twice")
    if not any(s.kind == StimulusKind.TEST for s in draft.stimuli):
        raise bad(f"study {draft.name!r} has no test stimuli")
    for s in draft.stimuli:
        if s.kind not in STIMULUS_KINDS:
            raise bad(f"stimulus kind {s.kind!r} is not one of {', '.join(STIMULUS_KINDS)}")
        kind = StimulusKind(s.kind)
        if s.expected != kind.expected_score:
            raise bad(f"a {s.kind} stimulus must expect {kind.expected_score}, not {s.expected}")
        if (kind is StimulusKind.TEST) != (s.method is not None) or (s.method is not None and s.method not in methods):
            raise bad(f"stimulus {s.public_id}: test items need one of the study's methods, others none")
        if (s.dataset, s.image) not in images:
            raise bad(f"stimulus {s.public_id}: image {s.dataset}/{s.image} is not among the study's images")
        if not inside(draft.folder, s.path).is_file():
            raise bad(f"stimulus file {draft.folder / s.path} is missing")

"""Values in error messages read as the user wrote them: `0`, not numpy 2's `np.int64(0)`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sreval import zoo
from sreval.analysis.ratings import read_ratings_csv
from sreval.errors import SrevalError

ROW = {"rater": "r1", "method": "nn", "dataset": "set5", "image": "baby", "score": 3, "repetition": 1}


def _message(path: Path, **changes: object) -> str:
    pd.DataFrame([{**ROW, **changes}]).to_csv(path, index=False)
    with pytest.raises(SrevalError) as error:
        read_ratings_csv(path)
    return str(error.value)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"repetition": 0}, "repetition must be an integer ≥ 1, not 0 (line 2)"),
        ({"repetition": 1.5}, "repetition must be an integer ≥ 1, not 1.5 (line 2)"),
        ({"score": None}, "score must be a number, not nan (line 2)"),
        ({"simulated": 2}, "'simulated' must be true or false, not 2 (line 2)"),
        ({"score": "good"}, "score must be a number, not 'good' (line 2)"),  # text stays quoted
    ],
)
def test_ratings_messages_show_plain_values(tmp_path: Path, changes: dict[str, object], expected: str) -> None:
    message = _message(tmp_path / "ratings.csv", **changes)
    assert expected in message and "np." not in message


def test_alpha_messages_show_plain_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SREVAL_ZOO", str(tmp_path / "zoo"))
    with pytest.raises(SrevalError, match=r"alpha must be a number in \[0, 1\], got 1\.5$"):
        zoo.alpha_sweep("a", "b", np.array([0.0, 1.5]), "p")
    with pytest.raises(SrevalError) as error:
        zoo.alpha_sweep("a", "b", np.array([0.5, 0.5]), "p")
    assert "alphas [0.5, 0.5] give duplicate names" in str(error.value)

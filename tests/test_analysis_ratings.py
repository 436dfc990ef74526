"""The ratings an analysis reads (`ratings`): checks with clear messages, what is analysed, and failed gold items
counted by the study vocabulary's gold rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sreval.analysis import read_ratings_csv, select_ratings, validate_ratings
from sreval.analysis.ratings import gold_failures
from sreval.errors import SrevalError
from sreval.vocabulary import (
    GOLD_HR_FAILS_AT_OR_BELOW,
    GOLD_KINDS,
    GOLD_NN_FAILS_AT_OR_ABOVE,
    GOLD_RULE,
    HIGHEST_SCORE,
    LOWEST_SCORE,
    SCORES,
    StimulusKind,
    failed_gold,
)


def test_ratings_are_checked_with_clear_messages(tmp_path: Path) -> None:
    good = {"rater": "a", "stimulus": "s", "method": "m", "dataset": "d", "image": "i", "repetition": 1, "score": 3}

    def error(rows: list[dict[str, Any]], **kwargs: Any) -> str:
        with pytest.raises(SrevalError) as caught:
            validate_ratings(pd.DataFrame(rows), **kwargs)
        return str(caught.value)

    assert "missing column(s) score" in error([{k: v for k, v in good.items() if k != "score"}])
    assert "outside the scale 1..5" in error([good, {**good, "stimulus": "t", "score": 7}]) and "line 3" in error(
        [good, {**good, "stimulus": "t", "score": 7}])  # fmt: skip
    assert "must be a number" in error([{**good, "score": "good"}])
    assert "more than once" in error([good, good])
    assert "repetition must be an integer" in error([{**good, "repetition": 0}])
    assert "different method" in error([good, {**good, "rater": "b", "method": "other"}])
    assert "kind 'bogus'" in error([{**good, "kind": "bogus"}])
    assert validate_ratings(pd.DataFrame([{**good, "score": 70}]), scale=None)["score"].iloc[0] == 70
    with pytest.raises(SrevalError, match="does not exist"):
        read_ratings_csv(tmp_path / "nope.csv")

    minimal = pd.DataFrame([{"rater": 1, "method": "m", "dataset": "d", "image": "i", "score": 4, "extra": "x"}])
    minimal.to_csv(tmp_path / "minimal.csv", index=False)
    read = read_ratings_csv(tmp_path / "minimal.csv")
    assert read.iloc[0].to_dict() == {
        "rater": "1",
        "stimulus": "m/d/i",
        "method": "m",
        "dataset": "d",
        "image": "i",
        "repetition": 1,
        "score": 4.0,
        "kind": "test",
        "simulated": False,
    }

def test_selection_leaves_out_gold_calibration_and_simulated() -> None:
    base = {"method": "m", "dataset": "d", "image": "i", "repetition": 1}
    rows = [
        {**base, "rater": "a", "stimulus": "t1", "score": 3, "kind": "test", "simulated": False},
        {**base, "rater": "a", "stimulus": "g1", "method": "hr", "score": 2, "kind": "gold_hr", "simulated": False},
        {**base, "rater": "a", "stimulus": "g2", "method": "nn", "score": 1, "kind": "gold_nn", "simulated": False},
        {**base, "rater": "a", "stimulus": "c1", "method": "hr", "dataset": "calibration", "score": 5,
         "kind": "calibration_hr", "simulated": False},
        {**base, "rater": "sim", "stimulus": "t1", "score": 4, "kind": "test", "simulated": True},
    ]  # fmt: skip
    ratings = validate_ratings(pd.DataFrame(rows))
    assert list(select_ratings(ratings)["stimulus"]) == ["t1"]
    assert set(select_ratings(ratings, include_gold=True)["stimulus"]) == {"t1", "g1", "g2"}
    assert set(select_ratings(ratings, include_calibration=True)["stimulus"]) == {"t1", "c1"}
    assert list(select_ratings(ratings, include_simulated=True)["rater"]) == ["a", "sim"]
    assert gold_failures(ratings).to_dict() == {"a": 1.0, "sim": 0.0}  # gold HR rated 2 is a failure
    with pytest.raises(SrevalError, match="simulated raters are left out"):
        select_ratings(ratings[ratings["simulated"]])


def test_gold_failures_follow_the_gold_rule_of_the_vocabulary() -> None:
    """Every gold kind at every score of the scale, the rule's boundaries included (HR: 2 fails, 3 passes; NN: 4
    fails, 3 passes): the analysis counts exactly what `vocabulary.failed_gold` calls failed, per rater."""
    assert (GOLD_HR_FAILS_AT_OR_BELOW, GOLD_NN_FAILS_AT_OR_ABOVE) == (2, 4)
    assert "2 or lower" in GOLD_RULE and "4 or higher" in GOLD_RULE
    base = {"dataset": "d", "image": "i", "repetition": 1}
    rows = [
        {**base, "rater": f"{kind}-{score}", "stimulus": f"{kind}-{score}", "method": kind, "kind": kind,
         "score": score}
        for kind in GOLD_KINDS for score in SCORES
    ]  # fmt: skip
    # A rater with several gold items (one failure of each kind) and a test item that no gold rule applies to.
    rows += [
        {**base, "rater": "many", "stimulus": "m-hr", "method": "hr", "kind": StimulusKind.GOLD_HR, "score": 2},
        {**base, "rater": "many", "stimulus": "m-hr3", "method": "hr", "kind": StimulusKind.GOLD_HR, "score": 3},
        {**base, "rater": "many", "stimulus": "m-nn", "method": "nn", "kind": StimulusKind.GOLD_NN, "score": 4},
        {**base, "rater": "many", "stimulus": "m-t", "method": "x", "kind": StimulusKind.TEST, "score": 1},
    ]
    ratings = validate_ratings(pd.DataFrame(rows))
    counted = gold_failures(ratings)
    by_rule = failed_gold(ratings["kind"], ratings["score"]).groupby(ratings["rater"]).sum().astype("float64")
    assert counted.to_dict() == by_rule.to_dict()
    assert (counted["gold_hr-2"], counted["gold_hr-3"]) == (1.0, 0.0)
    assert (counted["gold_nn-4"], counted["gold_nn-3"]) == (1.0, 0.0)
    assert counted["many"] == 2.0
    assert [s for s in SCORES if counted[f"gold_hr-{s}"]] == list(range(LOWEST_SCORE, GOLD_HR_FAILS_AT_OR_BELOW + 1))
    assert [s for s in SCORES if counted[f"gold_nn-{s}"]] == list(range(GOLD_NN_FAILS_AT_OR_ABOVE, HIGHEST_SCORE + 1))

"""Reliability of the ratings (`reliability`): Krippendorff's α and ICC against the published worked examples
of Krippendorff (2011) and Shrout & Fleiss (1979), test–retest by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sreval.analysis import validate_ratings
from sreval.analysis.reliability import complete_block, icc2, krippendorff_alpha, retest_by_rater


def test_krippendorff_alpha_worked_example() -> None:
    """Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", §C: 4 observers × 12 units with missing
    values; published α = 0.743 (nominal), 0.815 (ordinal), 0.849 (interval), 0.797 (ratio), to 3 decimals."""
    nan = math.nan
    observers = np.array([
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ])  # fmt: skip
    units = list(observers.T)
    published = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}
    for level, value in published.items():
        assert krippendorff_alpha(units, level) == pytest.approx(value, abs=5e-4), level  # type: ignore[arg-type]
    assert krippendorff_alpha([[1, 1], [2, 2], [3, 3]]) == 1.0
    assert math.isnan(krippendorff_alpha([[1], [2]]))

def test_icc_shrout_fleiss_worked_example() -> None:
    """Shrout & Fleiss (1979), Table 2 (6 targets × 4 judges) and Table 4: ICC(2,1) = 0.29, ICC(2,4) = 0.62."""
    table = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    single, average = icc2(table)
    assert (single, average) == pytest.approx((0.29, 0.62), abs=5e-3)
    # Spearman–Brown links them: ICC(2,k) = k·ICC(2,1) / (1 + (k − 1)·ICC(2,1)).
    assert average == pytest.approx(4 * single / (1 + 3 * single), abs=1e-12)

def test_complete_block_and_retest_by_hand() -> None:
    matrix = pd.DataFrame({"a": [1, 2, 3, 4], "b": [1, np.nan, 3, 4], "c": [np.nan, np.nan, np.nan, 1]})
    assert complete_block(matrix).shape == (3, 2)
    rows = [("a", "s1", 1, 1), ("a", "s1", 2, 1), ("a", "s2", 1, 2), ("a", "s2", 2, 3), ("a", "s3", 1, 4),
            ("a", "s3", 2, 4), ("b", "s1", 1, 5)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["rater", "stimulus", "repetition", "score"]).assign(
        method="m", dataset="d", image=lambda f: f["stimulus"]
    )
    retest = retest_by_rater(validate_ratings(frame)).set_index("rater")
    assert retest.loc["a", "retest_n"] == 3 and retest.loc["a", "retest_mad"] == pytest.approx(1 / 3)
    assert retest.loc["a", "retest_r"] == pytest.approx(np.corrcoef([1, 2, 4], [1, 3, 4])[0, 1])
    assert retest.loc["b", "retest_n"] == 0 and math.isnan(retest.loc["b", "retest_r"])

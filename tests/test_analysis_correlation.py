"""How well a metric predicts the MOS (`correlation`): SROCC, KROCC and PLCC after the logistic mapping, against
`scipy.stats` and a known logistic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sreval.analysis.correlation import correlate, correlation_table, logistic4


def test_correlations_after_the_logistic_mapping() -> None:
    x = np.linspace(20, 34, 30)
    mos = logistic4(x, 4.6, 1.2, 27.0, 2.0)
    result = correlate(x, mos)
    assert result["fit"] == "logistic4" and result["srocc"] == 1.0 and result["krocc"] == 1.0
    assert result["plcc"] == pytest.approx(1.0, abs=1e-9) and result["plcc_linear"] < 0.99  # type: ignore[operator]
    falling = correlate(-x, mos + np.random.default_rng(0).normal(0, 0.05, x.size))  # lower is better
    assert falling["srocc"] < -0.95 and falling["plcc"] > 0.99  # type: ignore[operator]
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=25), rng.normal(size=25)
    mixed = correlate(a, b)
    assert mixed["srocc"] == pytest.approx(stats.spearmanr(a, b).statistic)
    assert mixed["krocc"] == pytest.approx(stats.kendalltau(a, b).statistic)
    assert mixed["plcc_linear"] == pytest.approx(stats.pearsonr(a, b).statistic)
    assert correlate(a[:4], b[:4])["fit"] == "linear"

def test_correlation_table_joins_on_method_dataset_image() -> None:
    per_image = pd.DataFrame({"method": ["m1", "m2"] * 4, "dataset": ["d"] * 8,
                              "image": [f"i{k // 2}" for k in range(8)], "mos": np.arange(8.0)})  # fmt: skip
    values = per_image.rename(columns={"mos": "value"}).assign(metric="psnr", value=lambda f: f["value"] * 2)
    values = pd.concat([values, values.assign(dataset="other", metric="psnr")])  # does not join
    table = correlation_table(per_image, values)
    assert list(table["dataset"]) == ["all"] and table["n"].iloc[0] == 8 and table["srocc"].iloc[0] == 1.0

"""Average ordinal rank of each method (`ranks.csv`), as in the SRGAN paper's MOS analysis.

Within a block — one rater on one image of one dataset — the methods are ranked by that rater's score (mean of
their repetitions), 1 = best, tied scores sharing the average of their ranks. Only complete blocks count (the
rater scored every method of the dataset on that image), so that every rank runs over the same methods. A
method's average rank is the mean over the blocks; `rank_sd` is the standard deviation of its ranks. Only test
items are ranked: gold and calibration items show HR and NN on a few images only, outside the design.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from sreval.analysis.ratings import rater_means
from sreval.vocabulary import StimulusKind

COLUMNS = ("method", "dataset", "mean_rank", "rank_sd", "n_blocks", "n_methods")


def rank_table(ratings: pd.DataFrame) -> pd.DataFrame:
    """Average rank per method and dataset (`COLUMNS`), best first within each dataset."""
    rows = []
    test = ratings[ratings["kind"] == StimulusKind.TEST.value] if "kind" in ratings.columns else ratings
    means = rater_means(test)
    for dataset, part in means.groupby("dataset", sort=True):
        blocks = part.pivot_table(index=["rater", "image"], columns="method", values="score").dropna()
        methods = list(blocks.columns)
        if blocks.empty or len(methods) < 2:
            continue
        ranks = stats.rankdata(-blocks.to_numpy(np.float64), axis=1)  # 1 = highest score, ties averaged
        for column, method in enumerate(methods):
            rows.append({
                "method": method, "dataset": dataset, "mean_rank": float(ranks[:, column].mean()),
                "rank_sd": float(ranks[:, column].std(ddof=1)) if len(blocks) > 1 else float("nan"),
                "n_blocks": len(blocks), "n_methods": len(methods),
            })  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.sort_values(["dataset", "mean_rank", "method"], kind="stable").reset_index(drop=True)

"""The analysis of a MOS study: every analysis table from one ratings table, and the CSV files they are written
to (what `sreval analyze` writes).

`analyze` takes all ratings of a study (as `ratings.read_*` return them), picks the ones to analyse
(`ratings.select_ratings`) and computes:

    mos.csv          method × dataset MOS with 95 % CI                       (mos.py)
    wilcoxon.csv     every method pair per dataset, signed-rank test          (wilcoxon.py)
    raters.csv       BT.500 screening, P.910 bias / inconsistency, retest, gold  (screening.py, sureal.py, ...)
    reliability.csv  test–retest, ICC(2,1), ICC(2,k), Krippendorff's α        (reliability.py)
    ranks.csv        average rank per method                                  (ranks.py)
    quality.csv      per stimulus: MOS, P.913 bias-removed MOS, P.910 quality with CI   (sureal.py)
    correlation.csv  metric vs per-image MOS, when metric values are given    (correlation.py)

Screening only reports: no rater is dropped from the other tables (read `raters.csv` and exclude raters from
the ratings if the study's protocol says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sreval.analysis.correlation import correlation_table
from sreval.analysis.mos import CiMethod, check_n_boot, image_mos, mos_table
from sreval.analysis.ranks import rank_table
from sreval.analysis.ratings import gold_failures, select_ratings
from sreval.analysis.reliability import reliability_table, retest_by_rater
from sreval.analysis.screening import screen_raters
from sreval.analysis.sureal import subject_model
from sreval.analysis.wilcoxon import Correction, Pairing, compare_methods
from sreval.fileutil import atomic_open

#: Columns of `raters.csv`: the per-rater summary first, then the details behind it.
RATER_COLUMNS = (
    "rater", "n", "rejected_bt500", "bias", "inconsistency", "retest_r", "retest_mad", "gold_failures",
    "bias_se", "inconsistency_se", "bias_p913", "bt500_p", "bt500_q", "bt500_presentations", "retest_n",
)  # fmt: skip


@dataclass(frozen=True)
class AnalysisOptions:
    pairing: Pairing = "rater-image"
    correction: Correction = "holm"
    alpha: float = 0.05
    ci: CiMethod = "t"
    n_boot: int = 2000
    seed: int = 0
    include_gold: bool = False
    include_calibration: bool = False
    include_simulated: bool = False
    bt500_ddof: int = 1

    def __post_init__(self) -> None:
        check_n_boot(self.n_boot)


@dataclass
class Analysis:
    """The tables of one analysis; `correlation` is None without metric values."""

    ratings: pd.DataFrame  # the ratings analysed
    mos: pd.DataFrame
    wilcoxon: pd.DataFrame
    raters: pd.DataFrame
    reliability: pd.DataFrame
    ranks: pd.DataFrame
    quality: pd.DataFrame
    correlation: pd.DataFrame | None = None
    options: AnalysisOptions = field(default_factory=AnalysisOptions)

    def tables(self) -> dict[str, pd.DataFrame]:
        """File name → table, in the order they are written."""
        tables = {
            "mos.csv": self.mos, "wilcoxon.csv": self.wilcoxon, "raters.csv": self.raters,
            "reliability.csv": self.reliability, "ranks.csv": self.ranks, "quality.csv": self.quality,
        }  # fmt: skip
        if self.correlation is not None:
            tables["correlation.csv"] = self.correlation
        return tables


def rater_table(
    all_ratings: pd.DataFrame, ratings: pd.DataFrame, model: pd.DataFrame | None = None, *, ddof: int = 1
) -> pd.DataFrame:
    """`raters.csv`: one row per rater of `ratings` (the analysed ratings); gold failures count every gold item
    of the rater in `all_ratings`; `model` is the per-rater table of `subject_model(ratings)` (fitted when None)."""
    raters = pd.DataFrame({"rater": sorted(ratings["rater"].unique())})
    raters["n"] = raters["rater"].map(ratings.groupby("rater").size()).astype("int64")
    if model is None:
        _, model = subject_model(ratings)
    raters = raters.merge(screen_raters(ratings, ddof=ddof), on="rater", how="left")
    raters = raters.merge(model, on="rater", how="left").merge(retest_by_rater(ratings), on="rater", how="left")
    gold = gold_failures(all_ratings[all_ratings["rater"].isin(raters["rater"])])
    raters["gold_failures"] = raters["rater"].map(gold)
    raters["rejected_bt500"] = raters["rejected_bt500"].fillna(False).astype(bool)
    return raters.loc[:, list(RATER_COLUMNS)]


def analyze(
    all_ratings: pd.DataFrame,
    options: AnalysisOptions | None = None,
    *,
    metric_values: pd.DataFrame | None = None,
) -> Analysis:
    """Every table of a study's analysis (see the module docstring)."""
    options = options or AnalysisOptions()
    ratings = select_ratings(
        all_ratings, include_gold=options.include_gold, include_calibration=options.include_calibration,
        include_simulated=options.include_simulated,
    )  # fmt: skip
    if not options.include_simulated:
        all_ratings = all_ratings[~all_ratings["simulated"]]
    quality, model = subject_model(ratings)
    correlation = None
    if metric_values is not None:
        correlation = correlation_table(image_mos(ratings), metric_values)
    return Analysis(
        ratings=ratings,
        mos=mos_table(ratings, ci=options.ci, n_boot=options.n_boot, seed=options.seed),
        wilcoxon=compare_methods(ratings, pairing=options.pairing, correction=options.correction, alpha=options.alpha),
        raters=rater_table(all_ratings, ratings, model, ddof=options.bt500_ddof),
        reliability=reliability_table(ratings),
        ranks=rank_table(ratings),
        quality=quality,
        correlation=correlation,
        options=options,
    )


def write_analysis(analysis: Analysis, out: Path) -> list[Path]:
    """Write every table as CSV into the folder `out` (created; each file replaced atomically)."""
    written = []
    for name, table in analysis.tables().items():
        path = out / name
        with atomic_open(path, newline="") as f:
            table.to_csv(f, index=False)
        written.append(path)
    return written

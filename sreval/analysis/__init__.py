"""Statistics of MOS studies: MOS with confidence intervals, paired Wilcoxon comparisons,
rater screening and subject models (BT.500, P.913, P.910 / SUREAL), reliability, ranks, metric correlations
and the number of raters a study needs.

`study_analysis.analyze` makes every table of `sreval analyze` from a ratings table (`ratings.read_ratings_csv`,
or the study store's `ratings`); each module holds one analysis and documents its statistical choices:
`mos`, `wilcoxon`, `screening`, `sureal`, `reliability`, `ranks`, `correlation`, `power`.
"""

from sreval.analysis.power import PowerResult, raters_needed, simulated_power
from sreval.analysis.ratings import read_ratings_csv, select_ratings, validate_ratings
from sreval.analysis.study_analysis import Analysis, AnalysisOptions, analyze, write_analysis
from sreval.analysis.wilcoxon import signed_rank_test

__all__ = [
    "Analysis",
    "AnalysisOptions",
    "PowerResult",
    "analyze",
    "raters_needed",
    "read_ratings_csv",
    "select_ratings",
    "signed_rank_test",
    "simulated_power",
    "validate_ratings",
    "write_analysis",
]

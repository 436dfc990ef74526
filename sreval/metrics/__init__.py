"""Image quality metrics: pure functions in `functional`, registered thin classes in `registry`."""

from sreval.metrics.registry import (
    LumaMetric,
    Metric,
    MetricInfo,
    create_metric,
    metric_info,
    metric_names,
    parse_metrics,
    register_metric,
    score_all,
    select_metrics,
)

__all__ = [
    "LumaMetric",
    "Metric",
    "MetricInfo",
    "create_metric",
    "metric_info",
    "metric_names",
    "parse_metrics",
    "register_metric",
    "score_all",
    "select_metrics",
]

# Registers niqe, ma and pi (after the registry exists; they need model files only when created).
from sreval.metrics import perceptual  # noqa: F401

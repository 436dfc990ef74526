"""Image quality metrics: pure functions in `functional`, registered thin classes in `registry`."""

from sreval.metrics.registry import Metric, MetricInfo, create_metric, metric_names, parse_metrics, register_metric

__all__ = ["Metric", "MetricInfo", "create_metric", "metric_names", "parse_metrics", "register_metric"]

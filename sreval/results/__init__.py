"""Results database: every run, the methods and images it evaluated, and each metric value (see `store`)."""

from sreval.results.store import ImageRecord, MethodRecord, RunRecord, Store, ValueRecord, open_store

__all__ = ["ImageRecord", "MethodRecord", "RunRecord", "Store", "ValueRecord", "open_store"]

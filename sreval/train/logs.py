"""The run's logs: `train_log.csv` and `validation.csv` (append-only, trimmed back to the checkpoint on resume, so
a resumed run's curves continue without a gap or a duplicate), and TensorBoard events when it is installed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from sreval.fileutil import atomic_open


class CsvLog:
    """Append-only CSV; on resume, rows after the checkpoint's step are dropped (they will be redone)."""

    def __init__(self, path: Path, fields: list[str], resume_step: int) -> None:
        self.path = path
        self.fields = fields
        rows: list[dict[str, str]] = []
        if path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with atomic_open(path, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore").writerow(row)


def tensorboard(out: Path) -> Any:
    """A TensorBoard SummaryWriter into OUT/tensorboard, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: CSV logs are always written
        return None
    return SummaryWriter(str(out / "tensorboard"))

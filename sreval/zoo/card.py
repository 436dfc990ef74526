"""The model card (`README.md`) of an entry that sreval writes: the one writer for saved, interpolated and
trained models. The callers supply what only they know, the training and metrics sections."""

from __future__ import annotations

import json

from sreval import __version__
from sreval.zoo.entry import ZooEntry

NOT_RECORDED = "Not recorded: training data, steps and time were not given when this entry was saved."
NOT_MEASURED = "Not measured yet."


def _weights_line(entry: ZooEntry) -> str:
    weights = entry.weights
    if weights.status == "trained":
        return f"`{weights.file}` (safetensors), sha256 `{weights.sha256}`"
    if weights.status == "external":
        return f"external file, asset `{weights.asset}`, read by loader `{weights.loader}`"
    return f"none ({weights.status}): {weights.reason}"


def model_card(entry: ZooEntry, n_params: int, training: str | None = None, metrics: str | None = None) -> str:
    """The card of `entry`: its description, a table of architecture, scale, recipe and weights, then the
    sections `training` (data, steps, time) and `metrics` (what sreval measured), each Markdown text or None
    when not known."""
    lines = [
        f"# {entry.name}",
        "",
        entry.description,
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{entry.architecture}` {json.dumps(entry.model_kwargs())}, {n_params:,} parameters |",
        f"| scale | ×{entry.scale} |",
        f"| recipe | {f'`{entry.recipe}`' if entry.recipe else '—'} |",
        f"| weights | {_weights_line(entry)} |",
        f"| written by | sreval {__version__} |",
        "",
        "## Training",
        "",
        (training or NOT_RECORDED).rstrip("\n"),
        "",
        "## Metrics measured by sreval",
        "",
        (metrics or NOT_MEASURED).rstrip("\n"),
        "",
    ]
    return "\n".join(lines)

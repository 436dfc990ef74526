"""`sreval data download`: fetch the benchmark HR images from a public mirror, verified against the manifest.

The default mirror is the SelfExSR repository at a pinned commit, whose `*_HR.png` files are byte-identical to
the manifest. Each file goes through `sreval.download.fetch`: its size and checksum are checked before it gets its
name, so an interrupted or corrupted download never leaves a file that looks like a benchmark image. Failures stop
at the first file with one message (no retry storm: on a machine without network, the command must fail in
seconds, not hang).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sreval.datasets.registry import Dataset, ImageEntry, check_file
from sreval.download import DownloadError, Pins, fetch
from sreval.errors import SrevalError

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "https://raw.githubusercontent.com/jbhuang0604/SelfExSR/8f6dd8c1d20cb7e8792a7177b4f6fd677633f598"
TIMEOUT_S = 15.0

_BY_HAND = (
    "Copy the sets by hand and point --data-root or SREVAL_DATA_ROOT at them (layout: Set5/HR/*.png, ...), "
    "then run `sreval data verify`"
)


def mirror_url(base: str, entry: ImageEntry) -> str:
    """Where the SelfExSR layout keeps a file: `data/<Set>/image_SRF_4/<name>_HR.png`."""
    folder, _, filename = entry.path.split("/")
    return f"{base.rstrip('/')}/data/{folder}/image_SRF_4/{filename}"


def download(
    dataset: Dataset,
    root: Path,
    *,
    mirror: str = DEFAULT_MIRROR,
    timeout: float = TIMEOUT_S,
    progress: Callable[[ImageEntry], None] | None = None,
) -> int:
    """Download the files of `dataset` that are missing or wrong under `root`; returns how many were fetched."""
    if not mirror.startswith(("http://", "https://")):
        raise SrevalError(f"mirror must be an http(s) URL, got {mirror!r}")
    fetched = 0
    for entry in dataset.images:
        if check_file(entry, root) is not None:
            pins = Pins(size=entry.bytes, sha256=entry.sha256)
            try:
                fetch([mirror_url(mirror, entry)], root / entry.path, pins, timeout=timeout, show_progress=False)
            except DownloadError as e:
                if e.kind in ("offline", "unreachable"):
                    raise DownloadError(e.kind, f"{e}. {_BY_HAND}") from None
                raise
            fetched += 1
            log.info("fetched %s", root / entry.path)
        if progress is not None:
            progress(entry)
    return fetched

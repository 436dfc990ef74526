"""`sreval data download`: fetch the benchmark HR images from a public mirror, verified against the manifest.

The default mirror is the SelfExSR repository at a pinned commit, whose `*_HR.png` files are byte-identical to
the manifest. Each file is written atomically only after its checksum matched, so an interrupted download
leaves no partial file behind. Network failures stop at the first file with one message (no retry storm:
on a machine without network, the command must fail in seconds, not hang).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sreval.datasets.registry import Dataset, ImageEntry, check_file
from sreval.errors import SrevalError
from sreval.fileutil import atomic_open

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "https://raw.githubusercontent.com/jbhuang0604/SelfExSR/8f6dd8c1d20cb7e8792a7177b4f6fd677633f598"
TIMEOUT_S = 15.0


def mirror_url(base: str, entry: ImageEntry) -> str:
    """Where the SelfExSR layout keeps a file: `data/<Set>/image_SRF_4/<name>_HR.png`."""
    folder, _, filename = entry.path.split("/")
    return f"{base.rstrip('/')}/data/{folder}/image_SRF_4/{filename}"


def _fetch(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as e:
        raise SrevalError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except http.client.HTTPException as e:  # e.g. IncompleteRead: the connection dropped in the middle of the file
        raise SrevalError(f"download of {url} failed: {e!r}; nothing was written for this file, try again") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise SrevalError(
            f"cannot reach {url} ({reason}); no network? Copy the sets by hand and point --data-root or "
            f"SREVAL_DATA_ROOT at them (layout: Set5/HR/*.png, ...), then run `sreval data verify`"
        ) from None


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
        target = root / entry.path
        if check_file(entry, root) is not None:
            url = mirror_url(mirror, entry)
            data = _fetch(url, timeout)
            digest = hashlib.sha256(data).hexdigest()
            if digest != entry.sha256:
                raise SrevalError(
                    f"{url} has sha256 {digest}, expected {entry.sha256}; the mirror changed or the download was "
                    "corrupted: nothing was written for this file"
                )
            with atomic_open(target, "wb") as f:
                f.write(data)
            fetched += 1
            log.info("fetched %s", target)
        if progress is not None:
            progress(entry)
    return fetched

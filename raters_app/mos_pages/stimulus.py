"""A stimulus on a rater page: decoded on the server first, shown pixel for pixel as a data URI (no file
name or path reaches the browser), or replaced by a neutral message and reported to the admin when it cannot
be shown."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import streamlit as st
from PIL import Image

from mos_pages import common
from mos_pages.page_script import PAGE_SCRIPT
from sreval.errors import SrevalError

log = common.log

#: Shown instead of an image whose file cannot be read or decoded (the details go to the log and the admin).
UNSHOWABLE = "This image cannot be shown. Please tell the organiser of the study."
#: Session key: the stimuli this session already reported as unshowable (one report per session and item).
_REPORTED = "reported_problems"


@st.cache_data(show_spinner=False, max_entries=64)
def _png(path: str, mtime_ns: int, size: int) -> tuple[str, int, int]:
    """The PNG at `path` as base64 text with its pixel size (cached per file version). Every pixel is decoded
    first, so that a truncated or damaged file fails here rather than in the rater's browser."""
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "PNG":
            raise ValueError(f"{path} is a {image.format} file, not a PNG")
        image.load()
        width, height = image.size
    return base64.b64encode(data).decode("ascii"), width, height


def _decoded(path: Path) -> tuple[str, int, int] | str:
    """`_png` of the file, or what is wrong with it (for the log and the admin, never for the rater)."""
    try:
        info = path.stat()
        return _png(str(path), info.st_mtime_ns, info.st_size)
    except FileNotFoundError:
        return f"{path} is missing"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # PIL raises all of these
        return f"{path} cannot be read as a PNG: {' '.join(str(exc).split()) or type(exc).__name__}"


def showable(token_: str, stimulus: str, path: Path) -> tuple[str, int, int] | None:
    """The decoded stimulus; or, when it cannot be shown, None after the neutral message and the report."""
    decoded = _decoded(path)
    if isinstance(decoded, str):
        st.warning(UNSHOWABLE)
        _report(token_, stimulus, decoded)
        return None
    return decoded


def _report(token_: str, stimulus: str, problem: str) -> None:
    """Tell the admin (once per session and item) that `stimulus` could not be shown to this rater."""
    log.error("cannot show stimulus %s: %s", stimulus, problem)
    reported = set(st.session_state.get(_REPORTED, set()))
    if stimulus in reported:
        return
    try:
        common.rater_store().report_problem(token_, stimulus, problem)
    except SrevalError as exc:
        log.error("could not record that stimulus %s cannot be shown: %s", stimulus, exc)
        return
    st.session_state[_REPORTED] = reported | {stimulus}


# The answer buttons of item ITEM (keys `score-S-ITEM`, which Streamlit turns into the CSS class st-key-score-S-ITEM)
# are visible only while the stage of that item shows its decoded image.
_GATE = """
<style>
[class*="st-key-score-"] {{ visibility: hidden; }}
body:has(.sreval-stage[data-item="{item}"][data-loaded="yes"]) :is({buttons}) {{ visibility: visible; }}
</style>
"""

_STAGE = """
<div class="sreval-stage" {item} data-page="{page}" data-render="{render}" data-fits="unknown">
  <div class="sreval-too-small" role="alert" style="display:none;position:fixed;top:0;left:0;right:0;
    z-index:1000001;padding:.6rem 1rem;background:#fff3cd;color:#664d03;border-bottom:1px solid #ffe69c">
    Your browser window is too small to show this image at its true size ({width} × {height} pixels).
    Please make the window larger (full screen helps) so that the whole image is visible without scrolling.
  </div>
  <div style="overflow:auto;max-width:none">
    <img class="sreval-stimulus" alt="stimulus" draggable="false" src="data:image/png;base64,{data}"
      width="{width}" height="{height}" data-width="{width}" data-height="{height}"
      style="width:{width}px;height:{height}px;max-width:none;max-height:none;display:block">
  </div>
</div>
"""


def stage_html(decoded: tuple[str, int, int], render: str, item: int | None) -> str:
    """HTML showing a decoded PNG pixel for pixel, embedded as a data URI (no file name or path reaches the
    browser; the alt text is neutral), with the too-small warning and the page script; for a rated `item`
    (its schedule position) also the rule that shows its answer buttons once the image is drawn."""
    data, width, height = decoded
    html = _STAGE.format(item=f'data-item="{item}"' if item is not None else "", page=common.page_id(), render=render,
                         data=data, width=width, height=height)  # fmt: skip
    if item is not None:
        buttons = ", ".join(f".st-key-score-{score}-{item}" for score in common.SCORE_BUTTONS)
        html = _GATE.format(item=item, buttons=buttons) + html
    return html + PAGE_SCRIPT


def render_id(name: str) -> str:
    """The id of one drawing of a stimulus: which one (`name`) on which run of the page."""
    return f"{name}-{common.page_id()}"


def show_image(token_: str, stimulus: str, name: str) -> bool:
    """Show one of the rater's own stimuli without answer buttons (anchors, feedback); the store checks it is
    in their schedule. A file that cannot be shown gets the neutral message and is reported; returns whether
    the image was shown."""
    decoded = showable(token_, stimulus, common.rater_store().image_path(token_, stimulus))
    if decoded is None:
        return False
    st.html(stage_html(decoded, render_id(name), None), unsafe_allow_javascript=True)
    return True

"""What every page of the rater app shares: configuration, the open study store, the routed state and the
rating widget (one image at native resolution, the five answer buttons, keys 1–5, response time).

Configuration comes from Streamlit's secrets (`.streamlit/secrets.toml`) first, then the environment, so that
a deployment keeps its database password and admin hash out of the command line, and tests can use either:

* `db_url`: the study database (else SREVAL_DB, else sreval's default SQLite file);
* `admin_password_hash`: the admin password, as made by `sreval study hash-password` (else SREVAL_ADMIN_HASH).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image

from sreval import settings
from sreval.errors import SrevalError
from sreval.study import (
    SCORE_LABELS,
    Item,
    RaterView,
    Refusal,
    RequestRefused,
    StudyStore,
    SubmitResult,
    open_study_store,
)

log = logging.getLogger("sreval.raters_app")

#: Button text per score; the keyboard handler finds the buttons by this text.
SCORE_BUTTONS: dict[int, str] = {score: f"{score} {label.capitalize()}" for score, label in SCORE_LABELS.items()}
#: Page title shown in the browser tab (nothing about the study's content).
APP_TITLE = "Image quality study"


# --- configuration -------------------------------------------------------------------------------------------


def secret(name: str) -> str | None:
    """A top-level string from Streamlit's secrets, or None when there is no secrets file or no such key."""
    try:
        value = st.secrets[name]
    except (KeyError, FileNotFoundError):  # StreamlitSecretNotFoundError is a FileNotFoundError
        return None
    return str(value) if value else None


def db_url() -> str:
    """The study database: `db_url` in the secrets, else SREVAL_DB, else sreval's default."""
    return settings.db_url(secret("db_url"))


def admin_hash() -> str | None:
    """The admin password hash (`admin_password_hash` in the secrets, else SREVAL_ADMIN_HASH), None if unset."""
    return secret("admin_password_hash") or os.environ.get("SREVAL_ADMIN_HASH") or None


@st.cache_resource(show_spinner=False)
def _open(url: str) -> StudyStore:
    """One store (one connection pool) per database for the whole server: it is thread-safe."""
    return open_study_store(url)


def store() -> StudyStore:
    """The open study store of the configured database (`SrevalError` if it cannot be opened)."""
    return _open(db_url())


def token() -> str | None:
    """The rater token of the link (`?token=...`), None when the link has none."""
    value = st.query_params.get("token")
    return value or None


# --- routed state --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """What the router found out about the rater of this run, so that pages need not ask the store again."""

    token: str
    view: RaterView
    item: Item | None  # the due item (None: nothing left, or not asked because not needed)


def set_route(route: Route | None) -> None:
    st.session_state["route"] = route


def route() -> Route:
    """The routed state of this run (set by `app.py` before it runs a rater page)."""
    current = st.session_state.get("route")
    if not isinstance(current, Route):
        raise RuntimeError("a rater page ran without a route; run the app through app.py")
    return current


def flash(message: str) -> None:
    """Keep a message for the next run (shown by `show_flash`): callbacks run before the page is drawn."""
    st.session_state["flash"] = message


def show_flash() -> None:
    if message := st.session_state.pop("flash", None):
        st.warning(message)


# --- the stimulus at native resolution -------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _png(path: str, mtime_ns: int) -> tuple[str, int, int]:
    """The PNG at `path` as base64 text with its pixel size (cached per file version)."""
    data = Path(path).read_bytes()
    with Image.open(path) as image:
        width, height = image.size
    return base64.b64encode(data).decode("ascii"), width, height


# Installed once per browser page (scripts of st.html run again whenever their element is redrawn):
# * keys 1..5 click the button with that score's text (so a key press goes through exactly the same path as a
#   click), once per drawn item, ignoring held keys, modifier combinations and typing in inputs;
# * every stimulus is sized to its pixel size divided by devicePixelRatio, so that one image pixel is one
#   screen pixel whatever the display density or browser zoom, and the too-small warning is shown when the
#   image does not fit the window at that size (it is never scaled down).
_SCRIPT = """
<script>
(() => {
  const labels = __LABELS__;
  if (!window.__srevalRater) {
    window.__srevalRater = true;
    let answered = null;
    document.addEventListener("keydown", (event) => {
      if (event.repeat || event.ctrlKey || event.altKey || event.metaKey || !(event.key in labels)) return;
      const target = event.target;
      const typing = target instanceof HTMLElement
        && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
      if (typing) return;
      const stage = document.querySelector(".sreval-stage");
      if (!stage || stage.dataset.render === answered) return;
      const button = Array.from(document.querySelectorAll("button"))
        .find((b) => b.innerText.trim() === labels[event.key]);
      if (!button || button.disabled) return;
      event.preventDefault();
      answered = stage.dataset.render;
      button.click();
    });
    window.__srevalFit = () => {
      const ratio = window.devicePixelRatio || 1;
      for (const stage of document.querySelectorAll(".sreval-stage")) {
        const img = stage.querySelector("img");
        if (!img) continue;
        const width = Number(img.dataset.width) / ratio, height = Number(img.dataset.height) / ratio;
        img.style.width = `${width}px`;
        img.style.height = `${height}px`;
        const left = stage.getBoundingClientRect().left;
        const small = left + width > document.documentElement.clientWidth || height > window.innerHeight;
        stage.dataset.fits = small ? "no" : "yes";
        const warning = stage.querySelector(".sreval-too-small");
        if (warning) warning.style.display = small ? "block" : "none";
      }
    };
    window.addEventListener("resize", () => window.__srevalFit());
    new MutationObserver(() => window.__srevalFit()).observe(document.body, {childList: true, subtree: true});
  }
  window.__srevalFit();
})();
</script>
""".replace("__LABELS__", json.dumps({str(score): text for score, text in SCORE_BUTTONS.items()}))

_STAGE = """
<div class="sreval-stage" data-render="{render}" data-fits="unknown">
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


def stimulus_html(path: Path, render: str) -> str:
    """HTML showing the PNG at `path` pixel for pixel, embedded as a data URI (no file name or path reaches
    the browser; the alt text is neutral), with the too-small warning and the page script."""
    data, width, height = _png(str(path), path.stat().st_mtime_ns)
    return _STAGE.format(render=render, data=data, width=width, height=height) + _SCRIPT


def show_stimulus(path: Path, render: str) -> None:
    st.html(stimulus_html(path, render), unsafe_allow_javascript=True)


def show_image(token_: str, stimulus: str, render: str) -> None:
    """Show one of the rater's own stimuli (anchors, feedback): the store checks it is in their schedule."""
    show_stimulus(store().image_path(token_, stimulus), render)


# --- the rating widget -----------------------------------------------------------------------------------------

OnRecorded = Callable[[Item, int, SubmitResult], None]
#: Refusals that change the page (closed study, invalid link, finished rater): no message needed.
_ROUTED = (Refusal.STUDY_CLOSED, Refusal.INVALID_TOKEN, Refusal.FINISHED)


def _item_key(token_: str, item: Item) -> str:
    return f"{token_}/{item.stimulus}/{item.repetition}"


def _answer(token_: str, item: Item, score: int, on_recorded: OnRecorded | None) -> None:
    """Button callback: store the answer (one transaction in the store); a refusal leaves everything as it was
    and is shown on the next run. A replay (double click, second key press) is answered by the store as
    already recorded and changes nothing."""
    shown = st.session_state.get("shown")
    response_ms = None
    if isinstance(shown, tuple) and shown[0] == _item_key(token_, item):
        response_ms = round((time.monotonic() - shown[1]) * 1000)
    try:
        result = store().submit(token_, item.stimulus, item.repetition, score, response_ms)
    except RequestRefused as exc:
        if exc.reason not in _ROUTED:  # the router shows those as a page of their own
            flash(f"Your answer was not recorded: {exc}.")
        return
    except SrevalError as exc:
        log.error("could not store a rating: %s", exc)
        flash("Your answer could not be saved just now. Please answer again.")
        return
    st.session_state.pop("shown", None)
    if on_recorded is not None and result.status == "recorded":
        on_recorded(item, score, result)


def rating_widget(token_: str, item: Item, on_recorded: OnRecorded | None = None) -> None:
    """The five answer buttons and the item's image at native resolution; starts the response clock the first
    time the item is drawn (a redraw of the same item keeps the first time)."""
    key = _item_key(token_, item)
    shown = st.session_state.get("shown")
    if not (isinstance(shown, tuple) and shown[0] == key):
        st.session_state["shown"] = (key, time.monotonic())
    renders = int(st.session_state.get("renders", 0)) + 1
    st.session_state["renders"] = renders

    with st.container(horizontal=True, gap="small"):
        for score, text in SCORE_BUTTONS.items():
            st.button(
                text,
                key=f"score-{score}-{item.position}",  # a new key per item: a stale click is a replay
                on_click=_answer,
                args=(token_, item, score, on_recorded),
            )
    st.caption("Press a key from 1 to 5, or click a button.")
    show_stimulus(item.image_path, f"{item.position}-{renders}")

"""What every page of the rater app shares: configuration, the open study store, the routed state and the
rating widget (one image at native resolution, the five answer buttons, keys 1–5, response time).

Configuration comes from Streamlit's secrets (`.streamlit/secrets.toml`) first, then the environment, so that
a deployment keeps its database password and admin hash out of the command line, and tests can use either:

* `db_url`: the study database (else SREVAL_DB, else sreval's default SQLite file);
* `admin_password_hash`: the admin password, as made by `sreval study hash-password` (else SREVAL_ADMIN_HASH).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
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
    SignInGuard,
    StudyStore,
    SubmitResult,
    open_study_store,
)

log = logging.getLogger("sreval.raters_app")

#: Button text per score; the keyboard handler finds the buttons by this text.
SCORE_BUTTONS: dict[int, str] = {score: f"{score} {label.capitalize()}" for score, label in SCORE_LABELS.items()}
#: Page title shown in the browser tab (nothing about the study's content).
APP_TITLE = "Image quality study"
#: How long the page waits for the server to take an answer before asking the rater to answer again.
ANSWER_TIMEOUT_MS = 10_000


# --- configuration -------------------------------------------------------------------------------------------


def log_to_stderr() -> None:
    """Send sreval's log (failed sign-ins, unshowable stimuli, database errors: the details raters never see)
    to the server's standard error with the time, unless the deployment configured logging itself."""
    logger = logging.getLogger("sreval")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


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


@st.cache_resource(show_spinner=False)
def sign_in_guard() -> SignInGuard:
    """The admin sign-in throttle of this server (one for all sessions)."""
    return SignInGuard()


def client() -> str:
    """The address the request came from, for the sign-in throttle and the log ("local" for localhost).
    Behind a reverse proxy every rater may have the proxy's address: the throttle's server-wide limit holds
    then too."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "local"


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
    """The kept message, marked so that the page script knows the server answered (a refusal, not a loss)."""
    if message := st.session_state.pop("flash", None):
        st.warning(message)
        st.html(f'<span data-sreval-refused="{page_id()}" hidden></span>')


def new_page_id(name: str) -> str:
    """Start a run of page `name`: a new id for what it draws, unique across runs and server restarts, so the
    page script can tell this run's elements from those of the page it replaces."""
    value = f"{name}-{secrets.token_hex(4)}"
    st.session_state["page_id"] = value
    return value


def page_id() -> str:
    return str(st.session_state.get("page_id", "none"))


# --- the stimulus at native resolution -------------------------------------------------------------------------

#: Shown instead of an image whose file cannot be read or decoded (the details go to the log and the admin).
UNSHOWABLE = "This image cannot be shown. Please tell the organiser of the study."
#: Shown instead of anything the server knows about a failure (database errors, paths): it goes to the log.
UNAVAILABLE = (
    "The study cannot be reached just now. Nothing you answered is lost: please try again in a minute "
    "(reload the page)."
)
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


def _showable(token_: str, stimulus: str, path: Path) -> tuple[str, int, int] | None:
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
        store().report_problem(token_, stimulus, problem)
    except SrevalError as exc:
        log.error("could not record that stimulus %s cannot be shown: %s", stimulus, exc)
        return
    st.session_state[_REPORTED] = reported | {stimulus}


# Installed once per browser page (scripts of st.html run again whenever their element is redrawn):
# * the answer buttons of an item are hidden until its image is decoded and drawn (`data-loaded`), and keys
#   1..5 click the visible button with that score's text (so a key press goes through exactly the same path as a
#   click), once per drawn item, ignoring held keys, modifier combinations and typing in inputs;
# * an answer that does not reach the server is never lost silently. After an answer, the page must be redrawn
#   with another item (or another page). If the same item is drawn again instead without the server saying
#   why (a server restarted while the page stayed open has dropped the click), or nothing comes back within
#   ANSWER_TIMEOUT_MS, or a key is pressed while Streamlit has the buttons disabled (the connection is down),
#   a banner asks the rater to answer again, and keys work again at once;
# * every stimulus is sized to its pixel size divided by devicePixelRatio, so that one image pixel is one
#   screen pixel whatever the display density or browser zoom, and the too-small warning is shown when the
#   image does not fit the window at that size (it is never scaled down).
_SCRIPT = """
<script>
(() => {
  const labels = __LABELS__;
  const texts = new Set(Object.values(labels));
  if (!window.__srevalRater) {
    window.__srevalRater = true;
    let answered = null;  // the render whose answer was sent
    let pending = null;  // {item, page, timer} of the answer sent and not yet settled by a new page
    let last = null;  // {item, render} of the last rating stage seen
    const stage = () => document.querySelector(".sreval-stage[data-item]");
    const banner = () => {
      let node = document.getElementById("sreval-not-saved");
      if (!node) {
        node = document.createElement("div");
        node.id = "sreval-not-saved";
        node.setAttribute("role", "alert");
        node.style.cssText = "display:none;position:fixed;bottom:0;left:0;right:0;z-index:1000002;"
          + "padding:.8rem 1rem;background:#f8d7da;color:#58151c;border-top:1px solid #f1aeb5;font-weight:600";
        document.body.appendChild(node);
      }
      return node;
    };
    const notSaved = (text) => {
      if (pending) clearTimeout(pending.timer);
      pending = null;
      answered = null;
      const node = banner();
      node.textContent = text;
      node.style.display = "block";
    };
    // The id of the last whole page: each run of a rater page ends with its marker (see app.py).
    const pageId = () => {
      const markers = document.querySelectorAll("[data-sreval-page]");
      return markers.length ? markers[markers.length - 1].dataset.srevalPage : null;
    };
    const sent = () => {
      if (!last) return;
      if (pending) clearTimeout(pending.timer);
      answered = last.render;
      banner().style.display = "none";
      pending = {item: last.item, page: pageId(), timer: setTimeout(
        () => notSaved("Your answer did not reach the study server. Please answer again."), __TIMEOUT__)};
    };
    // Decides about the pending answer once a whole new page has arrived (its marker): the same item drawn
    // again means the answer was not saved, unless the server says why (a refusal of its own, shown); another
    // item or a page without items (feedback, thanks) means it was saved. Runs that are cut short (a reconnect
    // clears the page first; an answer taken during the run draws the page again) end with no marker.
    const settle = () => {
      if (!pending) return;
      const page = pageId();
      if (!page || page === pending.page) return;
      clearTimeout(pending.timer);
      const current = document.querySelector(`.sreval-stage[data-item][data-page="${page}"]`);
      const refused = document.querySelector(`[data-sreval-refused="${page}"]`);
      if (current && current.dataset.item === pending.item && !refused) {
        notSaved("Your answer was not saved. Please answer again.");
      } else {
        pending = null;
      }
    };
    document.addEventListener("click", (event) => {
      const button = event.target instanceof Element ? event.target.closest("button") : null;
      if (button && texts.has(button.innerText.trim())) sent();
    }, true);
    document.addEventListener("keydown", (event) => {
      if (event.repeat || event.ctrlKey || event.altKey || event.metaKey || !(event.key in labels)) return;
      const target = event.target;
      const typing = target instanceof HTMLElement
        && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
      if (typing) return;
      const current = stage();
      if (!current || current.dataset.render === answered) return;  // no item here, or its answer is on its way
      event.preventDefault();
      const button = Array.from(document.querySelectorAll("button"))
        .find((b) => b.innerText.trim() === labels[event.key] && b.checkVisibility());
      if (current.dataset.loaded !== "yes" || !button) {
        notSaved("Your answer was not sent: the image is not shown yet. Please answer once you see it.");
      } else if (button.disabled) {
        notSaved("The connection to the study server is interrupted: your answer was not sent. "
          + "Please wait a moment and answer again.");
      } else {
        button.click();
      }
    });
    window.__srevalFit = () => {
      const ratio = window.devicePixelRatio || 1;
      for (const stage of document.querySelectorAll(".sreval-stage")) {
        const img = stage.querySelector("img");
        if (!img) continue;
        if (img.complete && img.naturalWidth > 0) stage.dataset.loaded = "yes";
        else img.addEventListener("load", () => window.__srevalFit(), {once: true});
        const width = Number(img.dataset.width) / ratio, height = Number(img.dataset.height) / ratio;
        img.style.width = `${width}px`;
        img.style.height = `${height}px`;
        const left = stage.getBoundingClientRect().left;
        const small = left + width > document.documentElement.clientWidth || height > window.innerHeight;
        stage.dataset.fits = small ? "no" : "yes";
        const warning = stage.querySelector(".sreval-too-small");
        if (warning) warning.style.display = small ? "block" : "none";
      }
      const current = stage();
      if (current) last = {item: current.dataset.item, render: current.dataset.render};
      settle();
    };
    window.addEventListener("resize", () => window.__srevalFit());
    new MutationObserver(() => window.__srevalFit()).observe(document.body, {childList: true, subtree: true});
  }
  window.__srevalFit();
})();
</script>
""".replace("__LABELS__", json.dumps({str(score): text for score, text in SCORE_BUTTONS.items()})).replace(
    "__TIMEOUT__", str(ANSWER_TIMEOUT_MS)
)

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


def _stage_html(decoded: tuple[str, int, int], render: str, item: int | None) -> str:
    """HTML showing a decoded PNG pixel for pixel, embedded as a data URI (no file name or path reaches the
    browser; the alt text is neutral), with the too-small warning and the page script; for a rated `item`
    (its schedule position) also the rule that shows its answer buttons once the image is drawn."""
    data, width, height = decoded
    html = _STAGE.format(item=f'data-item="{item}"' if item is not None else "", page=page_id(), render=render,
                         data=data, width=width, height=height)  # fmt: skip
    if item is not None:
        buttons = ", ".join(f".st-key-score-{score}-{item}" for score in SCORE_BUTTONS)
        html = _GATE.format(item=item, buttons=buttons) + html
    return html + _SCRIPT


def _render_id(name: str) -> str:
    """The id of one drawing of a stimulus: which one (`name`) on which run of the page."""
    return f"{name}-{page_id()}"


def show_image(token_: str, stimulus: str, name: str) -> bool:
    """Show one of the rater's own stimuli without answer buttons (anchors, feedback); the store checks it is
    in their schedule. A file that cannot be shown gets the neutral message and is reported; returns whether
    the image was shown."""
    decoded = _showable(token_, stimulus, store().image_path(token_, stimulus))
    if decoded is None:
        return False
    st.html(_stage_html(decoded, _render_id(name), None), unsafe_allow_javascript=True)
    return True


# --- the rating widget -----------------------------------------------------------------------------------------

OnRecorded = Callable[[Item, int, SubmitResult], None]
#: Refusals that change the page (closed study, invalid link, finished rater): no message needed.
_ROUTED = (Refusal.STUDY_CLOSED, Refusal.INVALID_TOKEN, Refusal.FINISHED)
#: Session key: the answer button whose callback ran before the current run.
_ANSWERED = "answered_button"


def _item_key(token_: str, item: Item) -> str:
    return f"{token_}/{item.stimulus}/{item.repetition}"


def _answer(token_: str, item: Item, score: int, on_recorded: OnRecorded | None, timed: bool = True) -> None:
    """Store the answer (one transaction in the store); a refusal leaves everything as it was and is shown on
    the next run. A replay (double click, second key press) is answered by the store as already recorded and
    changes nothing. `timed`: the response time runs from this session's first drawing of the item."""
    st.session_state[_ANSWERED] = _button_key(score, item)
    shown = st.session_state.get("shown")
    response_ms = None
    if timed and isinstance(shown, tuple) and shown[0] == _item_key(token_, item):
        response_ms = round((time.monotonic() - shown[1]) * 1000)
    try:
        result = store().submit(token_, item.stimulus, item.repetition, score, response_ms)
    except RequestRefused as exc:
        if exc.reason not in _ROUTED:  # the router shows those as a page of their own
            flash(f"Your answer was not recorded: {exc}.")
        return
    except SrevalError as exc:
        log.error("could not store a rating: %s", exc)
        flash(f"Your answer was not saved. {UNAVAILABLE}")
        return
    st.session_state.pop("shown", None)
    if on_recorded is not None and result.status == "recorded":
        on_recorded(item, score, result)


def _button_key(score: int, item: Item) -> str:
    """A new key per item (and score): a click on the button of an item already answered is a stale click."""
    return f"score-{score}-{item.position}"


def rating_widget(token_: str, item: Item, on_recorded: OnRecorded | None = None) -> None:
    """The five answer buttons and the item's image at native resolution; starts the response clock the first
    time the item is drawn (a redraw of the same item keeps the first time).

    The image is decoded before anything is drawn: when its file cannot be shown, the rater gets the neutral
    message and no buttons (so no answer can be given for an image nobody saw), and the admin a report."""
    decoded = _showable(token_, item.stimulus, item.image_path)
    if decoded is None:
        return
    key = _item_key(token_, item)
    shown = st.session_state.get("shown")
    if not (isinstance(shown, tuple) and shown[0] == key):
        st.session_state["shown"] = (key, time.monotonic())
    answered = st.session_state.pop(_ANSWERED, None)  # the button whose callback ran before this run

    pressed = None
    with st.container(horizontal=True, gap="small"):
        for score, text in SCORE_BUTTONS.items():
            button = _button_key(score, item)
            if st.button(text, key=button, on_click=_answer, args=(token_, item, score, on_recorded)):
                pressed = score if answered != button else pressed
    st.caption("Press a key from 1 to 5, or click a button.")
    st.html(_stage_html(decoded, _render_id(str(item.position)), item.position), unsafe_allow_javascript=True)
    if pressed is not None:
        # A click on a page drawn by an earlier server process (restarted while the page stayed open) reaches
        # a session that never drew the button: Streamlit reports the click but runs no callback. Answer it
        # here (without a response time: this session did not see the item appear) and draw the next page.
        _answer(token_, item, pressed, on_recorded, timed=False)
        st.rerun()

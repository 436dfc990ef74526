"""The answering widget of the rating and calibration pages: the item's image, the five answer buttons (keys
1–5 press them, see `page_script`), the response time, and the submit of the answer."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from mos_pages import common, stimulus
from sreval.errors import SrevalError
from sreval.study import Item, Refusal, RequestRefused, SubmitResult
from sreval.vocabulary import HIGHEST_SCORE, LOWEST_SCORE

log = common.log

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
        result = common.rater_store().submit(token_, item.stimulus, item.repetition, score, response_ms)
    except RequestRefused as exc:
        if exc.reason not in _ROUTED:  # the router shows those as a page of their own
            common.flash(f"Your answer was not recorded: {exc}.")
        return
    except SrevalError as exc:
        log.error("could not store a rating: %s", exc)
        common.flash(f"Your answer was not saved. {common.UNAVAILABLE}")
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
    decoded = stimulus.showable(token_, item.stimulus, item.image_path)
    if decoded is None:
        return
    key = _item_key(token_, item)
    shown = st.session_state.get("shown")
    if not (isinstance(shown, tuple) and shown[0] == key):
        st.session_state["shown"] = (key, time.monotonic())
    answered = st.session_state.pop(_ANSWERED, None)  # the button whose callback ran before this run

    pressed = None
    with st.container(horizontal=True, gap="small"):
        for score, text in common.SCORE_BUTTONS.items():
            button = _button_key(score, item)
            if st.button(text, key=button, on_click=_answer, args=(token_, item, score, on_recorded)):
                pressed = score if answered != button else pressed
    st.caption(f"Press a key from {LOWEST_SCORE} to {HIGHEST_SCORE}, or click a button.")
    html = stimulus.stage_html(decoded, stimulus.render_id(str(item.position)), item.position)
    st.html(html, unsafe_allow_javascript=True)
    if pressed is not None:
        # A click on a page drawn by an earlier server process (restarted while the page stayed open) reaches
        # a session that never drew the button: Streamlit reports the click but runs no callback. Answer it
        # here (without a response time: this session did not see the item appear) and draw the next page.
        _answer(token_, item, pressed, on_recorded, timed=False)
        st.rerun()

"""Calibration: first the two ends of the scale (an image that stands for the top score and one for the bottom),
then the calibration items one at a time, each followed by feedback with its intended score.

Calibration answers are stored like any other rating (the store keeps them apart by the stimulus kind), so
a rater who leaves during calibration resumes at the next calibration item.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from mos_pages import answering, common, stimulus
from sreval.study import Item, SubmitResult

#: Session key of the feedback waiting to be shown after a calibration answer.
FEEDBACK = "calibration_feedback"
#: Session key of the tokens whose anchors were shown in this session.
ANCHORS_SEEN = "anchors_seen"


def _label(score: int) -> str:
    return common.SCORE_BUTTONS[score].replace(" ", " – ", 1)


def feedback_pending(token: str) -> bool:
    """Whether this session owes the rater the feedback for their last calibration answer."""
    pending = st.session_state.get(FEEDBACK)
    return isinstance(pending, dict) and pending.get("token") == token


def _remember_feedback(token: str) -> answering.OnRecorded:
    def remember(item: Item, score: int, result: SubmitResult) -> None:
        last = item.phase_position + 1 >= item.phase_total
        st.session_state[FEEDBACK] = {
            "token": token, "score": score, "anchor": item.anchor, "stimulus": item.stimulus, "last": last,
        }  # fmt: skip

    return remember


def _anchors_done(token: str) -> None:
    seen = set(st.session_state.get(ANCHORS_SEEN, set()))
    st.session_state[ANCHORS_SEEN] = seen | {token}


def _show_anchors(token: str) -> None:
    st.title("Calibration")
    st.write(
        "Before you start, here are the two ends of the scale. Look at both carefully: the study's images lie "
        "somewhere between (or at) these two."
    )
    # The store picks the two from the rater's own calibration items; only their stimulus ids reach the page.
    for anchor in common.rater_store().calibration_anchors(token):
        st.subheader(f"This is an example of {_label(anchor.score)}")
        stimulus.show_image(token, anchor.stimulus, f"anchor-{anchor.score}")
    st.button("Start calibration", type="primary", on_click=_anchors_done, args=(token,))


def _show_feedback(token: str, feedback: dict[str, Any]) -> None:
    score, anchor = int(feedback["score"]), feedback["anchor"]
    st.title("Calibration")
    if anchor is None:
        st.info(f"You answered {_label(score)}.")
    elif score == anchor:
        st.success(f"You answered {_label(score)}: that is the intended score for this image.")
    else:
        st.info(f"You answered {_label(score)}. This image is an example of {_label(int(anchor))}.")
    if feedback["last"]:
        st.write("Calibration is complete. The study begins now; from here on there is no feedback.")
    label = "Begin the study" if feedback["last"] else "Next image"
    st.button(label, type="primary", on_click=lambda: st.session_state.pop(FEEDBACK, None))
    stimulus.show_image(token, str(feedback["stimulus"]), "feedback")


def render() -> None:
    route = common.route()
    token = route.token
    pending = st.session_state.get(FEEDBACK)
    if feedback_pending(token) and isinstance(pending, dict):
        _show_feedback(token, pending)
        return
    item = route.item
    assert item is not None and item.phase == "calibration"
    if item.phase_position == 0 and token not in st.session_state.get(ANCHORS_SEEN, set()):
        _show_anchors(token)
        return
    st.title("Calibration")
    st.progress(
        item.phase_position / item.phase_total,
        text=f"Calibration image {item.phase_position + 1} of {item.phase_total}",
    )
    common.show_flash()
    st.write("How good is the quality of this image? After your answer you will see the intended score.")
    answering.rating_widget(token, item, _remember_feedback(token))

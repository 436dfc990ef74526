"""The page shown when the study database cannot be reached: ask the rater to come back later."""

from __future__ import annotations

import streamlit as st


def render() -> None:
    st.title("Please try again later")
    st.error(
        "The study is not available right now. Nothing you answered is lost: open the same link again in a few "
        "minutes to carry on where you stopped."
    )

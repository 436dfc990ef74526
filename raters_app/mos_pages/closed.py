"""The page for a link to a study that is closed: it takes no more ratings."""

from __future__ import annotations

import streamlit as st


def render() -> None:
    st.title("This study is closed")
    st.write("The study is no longer taking ratings. Thank you for your interest.")

"""The page for a link without a valid token: says so and nothing else (no hint whether a study exists)."""

from __future__ import annotations

import streamlit as st


def render() -> None:
    st.title("This link is not valid")
    st.write(
        "Please open the study with the personal link you were sent, exactly as it was sent (the whole link). "
        "If it still does not work, write to the person who invited you."
    )

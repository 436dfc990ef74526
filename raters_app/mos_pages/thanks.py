"""The last page: every item is rated. A finished rater always lands here; there is nothing left to rate."""

from __future__ import annotations

import streamlit as st

from mos_pages import common


def render() -> None:
    view = common.route().view
    st.title("Thank you!")
    st.success(f"All {view.total} of your answers are saved. You have finished the study.")
    st.write("You can close this window now.")

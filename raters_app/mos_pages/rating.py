"""The study itself: one image at a time at native resolution, the ACR scale, progress; the score keys answer."""

from __future__ import annotations

import streamlit as st

from mos_pages import answering, common


def render() -> None:
    route = common.route()
    item = route.item
    assert item is not None and item.phase == "test"
    st.progress(
        item.phase_position / item.phase_total,
        text=f"Image {item.phase_position + 1} of {item.phase_total}",
    )
    common.show_flash()
    st.markdown("**How good is the quality of this image?**")
    answering.rating_widget(route.token, item)

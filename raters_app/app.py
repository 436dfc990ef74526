"""Entry point of the rater app (`streamlit run raters_app/app.py`): it only decides which page to show.

`?admin=1` opens the admin page. Otherwise the rater's `?token=...` decides, from the store's view of that
rater: invalid link → closed study → consent → calibration → rating → thanks. The pages are UI only and
live in `mos_pages/`; the router hands them what it learnt (`common.Route`) so they need not ask again.
Returning with the same link lands on the rater's next unrated item, because the store always gives that.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import streamlit as st
from mos_pages import admin, calibration, closed, common, consent, invalid, rating, thanks, unavailable

from sreval.errors import SrevalError
from sreval.study import Refusal, RequestRefused

log = logging.getLogger("sreval.raters_app")


def page(render: Callable[[], None], title: str, url_path: str) -> st.Page:
    """A page of the app; each run offers exactly one, so it is always the default page (no URL routing)."""
    return st.Page(render, title=title, url_path=url_path, default=True)


def rater(render: Callable[[], None], title: str, url_path: str) -> st.Page:
    """A page for raters: a refusal the store explains to raters is shown as it is; any other failure of the
    study's storage or files gets one generic sentence on the page and its details in the server's log."""

    @functools.wraps(render)
    def guarded() -> None:
        this_run = common.new_page_id(url_path)
        try:
            render()
            # Drawn last: tells the page script that this whole page has arrived (see page_script.PAGE_SCRIPT).
            st.html(f'<span data-sreval-page="{this_run}" hidden></span>')
        except RequestRefused as exc:
            st.warning(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
        except SrevalError as exc:
            log.error("rater page %s failed: %s", url_path, exc)
            st.error(common.UNAVAILABLE)

    return page(guarded, title, url_path)


def rater_page(token: str | None) -> st.Page:
    """The page for the rater of `token` (setting `common.Route` for it)."""
    common.set_route(None)
    if token is None:
        return page(invalid.render, "Invalid link", "invalid")
    store = common.rater_store()
    view = store.rater_for_token(token)
    if view is None:
        return page(invalid.render, "Invalid link", "invalid")
    if view.closed:
        return page(closed.render, "Study closed", "closed")
    if not view.consent_given:
        common.set_route(common.Route(token, view, None))
        return rater(consent.render, common.APP_TITLE, "consent")
    if calibration.feedback_pending(token):
        common.set_route(common.Route(token, view, None))
        return rater(calibration.render, "Calibration", "calibration")
    try:
        item = None if view.finished else store.next_item(token)
    except RequestRefused as exc:  # the study was closed since the view was read
        if exc.reason == Refusal.STUDY_CLOSED:
            return page(closed.render, "Study closed", "closed")
        return page(invalid.render, "Invalid link", "invalid")
    common.set_route(common.Route(token, view, item))
    if item is None:
        return rater(thanks.render, "Thank you", "thanks")
    if item.phase == "calibration":
        return rater(calibration.render, "Calibration", "calibration")
    return rater(rating.render, common.APP_TITLE, "rate")


def choose_page() -> st.Page:
    if "admin" in st.query_params:
        return page(admin.render, "Study administration", "admin")
    try:
        return rater_page(common.token())
    except SrevalError as exc:
        log.error("study database error: %s", exc)  # the rater sees only that the study is not available
        return page(unavailable.render, "Please try again later", "unavailable")


common.log_to_stderr()
st.set_page_config(page_title=common.APP_TITLE, layout="wide", initial_sidebar_state="collapsed")
st.navigation([choose_page()], position="hidden").run()

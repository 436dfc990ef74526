"""The admin page (`?admin=1`): behind the password whose hash is in the secrets; shows every study's progress
per rater and per method and the failed gold items, invites raters, exports the ratings, closes a study."""

from __future__ import annotations

import logging
import math

import streamlit as st

from mos_pages import common
from sreval.errors import SrevalError
from sreval.study import check_admin_password, invite_link
from sreval.vocabulary import GOLD_RULE

log = logging.getLogger("sreval.raters_app")

SIGNED_IN = "admin_signed_in"
PASSWORD = "admin-password"
LINKS = "admin_invite_links"


def _sign_in(hashed: str) -> None:
    password = str(st.session_state.get(PASSWORD, ""))
    st.session_state[PASSWORD] = ""  # never kept in the session
    try:
        result = common.sign_in_guard().attempt(common.client(), lambda: check_admin_password(password, hashed))
    except SrevalError as exc:
        common.flash(f"The admin password hash in the app's secrets is not usable: {exc}")
        return
    if result.ok:
        st.session_state[SIGNED_IN] = True
    elif result.wait_s > 0:
        common.flash(f"Too many failed sign-ins: try again in {math.ceil(result.wait_s)} s.")
    else:
        common.flash("Wrong password.")


def _sign_out() -> None:
    st.session_state.pop(SIGNED_IN, None)
    st.session_state.pop(LINKS, None)


def _close(study: str) -> None:
    try:
        closed_at = common.admin_store().close_study(study)
    except SrevalError as exc:
        common.flash(f"Could not close {study}: {exc}")
        return
    st.session_state["admin_notice"] = f"Study {study} closed at {closed_at:%Y-%m-%d %H:%M:%S} UTC."


def _invite(study: str) -> None:
    n, base = st.session_state.get("invite-n", 1), str(st.session_state.get("invite-base", "")).strip()
    try:
        links = [(rater, invite_link(base, tok)) for rater, tok in common.admin_store().invite(study, int(n))]
    except SrevalError as exc:
        common.flash(f"Nobody was invited: {exc}")
        return
    st.session_state[LINKS] = (study, "\n".join(f"{rater}\t{link}" for rater, link in links))


def _sign_in_form(hashed: str) -> None:
    with st.form("sign-in"):
        st.text_input("Admin password", type="password", key=PASSWORD)
        st.form_submit_button("Sign in", on_click=_sign_in, args=(hashed,))


def render() -> None:
    st.title("Study administration")
    hashed = common.admin_hash()
    if not hashed:
        st.error(
            "No admin password is set. Make a hash with `sreval study hash-password` and put it in the app's "
            '`.streamlit/secrets.toml` as `admin_password_hash = "..."`.'
        )
        return
    common.show_flash()
    if not st.session_state.get(SIGNED_IN):
        _sign_in_form(hashed)
        return
    st.button("Sign out", on_click=_sign_out)
    if notice := st.session_state.pop("admin_notice", None):
        st.success(notice)
    try:
        _studies()
    except SrevalError as exc:
        st.error(str(exc))


def _studies() -> None:
    store = common.admin_store()
    studies = store.list_studies()
    st.caption(f"Database: {store.url}")
    if studies.empty:
        st.info("This database holds no study yet: create one with `sreval study create`.")
        return
    st.dataframe(studies, hide_index=True)
    study = st.selectbox("Study", list(studies["name"]), index=len(studies) - 1, key="admin-study")
    assert study is not None
    simulated = st.toggle("Include simulated raters", key="admin-simulated")
    status = store.status(study, include_simulated=simulated)
    info = status.info
    state = "open" if info.closed_at is None else f"closed since {info.closed_at:%Y-%m-%d %H:%M} UTC"
    stimuli = ", ".join(f"{n} {kind}" for kind, n in info.stimuli.items() if n)
    st.markdown(f"**{info.name}**: {state}; methods {', '.join(info.methods)}; stimuli: {stimuli}.")

    st.subheader("Progress per rater")
    if status.raters.empty:
        st.write("Nobody is invited yet.")
    else:
        st.dataframe(status.raters, hide_index=True)
    st.subheader("Progress per method")
    st.dataframe(status.methods, hide_index=True)
    st.subheader("Failed gold items")
    st.caption(f"Rule: {GOLD_RULE}.")
    if status.gold_failures.empty:
        st.write("None so far.")
    else:
        st.dataframe(status.gold_failures, hide_index=True)
    st.subheader("Images that could not be shown")
    if status.problems.empty:
        st.write("None.")
    else:
        st.error(
            f"{len(status.problems)} stimulus file(s) could not be shown: the raters who reached them cannot go on "
            "until the file is restored in the study folder."
        )
        st.dataframe(status.problems, hide_index=True)

    st.subheader("Export")
    gold = st.checkbox("Include gold items", value=True, key="export-gold")
    calibration = st.checkbox("Include calibration items", value=True, key="export-calibration")
    ratings = store.export(study, include_simulated=simulated, include_gold=gold, include_calibration=calibration)
    st.download_button(
        f"Download {len(ratings)} ratings (CSV)",
        ratings.to_csv(index=False).encode(),
        file_name=f"{study}-ratings.csv",
        mime="text/csv",
        key="export-csv",
    )

    if info.closed_at is None:
        st.subheader("Invite raters")
        st.number_input("Number of raters", min_value=1, max_value=500, value=1, key="invite-n")
        st.text_input("Address of this app (the links point there)", key="invite-base", placeholder="https://…")
        st.button("Create links", on_click=_invite, args=(study,))
        links = st.session_state.get(LINKS)
        if isinstance(links, tuple) and links[0] == study:
            st.warning("Copy these links now: they are shown only once (the database keeps only a hash).")
            st.code(links[1], language=None)

        st.subheader("Close the study")
        confirmed = st.checkbox(f"Yes, close {study}: it will take no more ratings.", key=f"confirm-close-{study}")
        st.button("Close study", type="primary", disabled=not confirmed, on_click=_close, args=(study,))

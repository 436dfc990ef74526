"""Consent and instructions: what the study asks, what is stored, and the scale; rating starts only after
the rater agrees (the store refuses ratings without consent)."""

from __future__ import annotations

import logging

import streamlit as st

from mos_pages import common
from sreval.errors import SrevalError
from sreval.study import RequestRefused
from sreval.vocabulary import HIGHEST_SCORE, LOWEST_SCORE, SCORE_LABELS, SCORES

log = logging.getLogger("sreval.raters_app")

_SCALE_ROWS = "\n".join(f"| {score} | {label.capitalize()} |" for score, label in reversed(SCORE_LABELS.items()))

INSTRUCTIONS = f"""
You will see images one at a time and rate the **quality** of each one on a {len(SCORES)}-point scale:

| Score | Meaning |
|---|---|
{_SCALE_ROWS}

* Answer with the keys **{LOWEST_SCORE}** to **{HIGHEST_SCORE}**, or click the buttons above the image. Each answer
  is saved at once and cannot be changed afterwards. Go with your first impression; there are no right or wrong
  answers.
* Each image is shown at its true size, pixel for pixel. Use a computer with a large screen and keep the
  browser window large (full screen is best); you will be told if the window is too small.
* Some images appear more than once. That is intended: rate each showing on its own.
* First comes a short **calibration**: you see what a {HIGHEST_SCORE} and a {LOWEST_SCORE} look like, then rate a
  few images and are told the intended score. Then the study itself begins.
* You can stop at any time and come back later with the same link: you will continue where you stopped.
"""

DATA = """
**What is stored:** your answers, how long each answer took and when it was given, linked to a random rater
number (not to your name or e-mail address). The answers are used for research on image quality and may be
published in anonymous form. Taking part is voluntary; you may stop at any time without giving a reason.
"""


def _agree(token: str) -> None:
    try:
        common.rater_store().give_consent(token)
    except RequestRefused as exc:
        common.flash(f"Your consent could not be recorded: {exc}.")
    except SrevalError as exc:
        log.error("could not record consent: %s", exc)
        common.flash(f"Your consent could not be recorded. {common.UNAVAILABLE}")


def render() -> None:
    route = common.route()
    st.title("Image quality study")
    common.show_flash()
    st.markdown(INSTRUCTIONS)
    st.markdown(f"There are **{route.view.total}** images to rate in all.")
    st.markdown(DATA)
    agreed = st.checkbox("I have read the above and agree to take part.", key="consent-agree")
    st.button("Start", type="primary", disabled=not agreed, on_click=_agree, args=(route.token,))

"""Consent and instructions: what the study asks, what is stored, and the scale; rating starts only after
the rater agrees (the store refuses ratings without consent)."""

from __future__ import annotations

import logging

import streamlit as st

from mos_pages import common
from sreval.errors import SrevalError
from sreval.study import RequestRefused

log = logging.getLogger("sreval.raters_app")

INSTRUCTIONS = """
You will see images one at a time and rate the **quality** of each one on a five-point scale:

| Score | Meaning |
|---|---|
| 5 | Excellent |
| 4 | Good |
| 3 | Fair |
| 2 | Poor |
| 1 | Bad |

* Answer with the keys **1** to **5**, or click the buttons above the image. Each answer is saved at once and
  cannot be changed afterwards. Go with your first impression; there are no right or wrong answers.
* Each image is shown at its true size, pixel for pixel. Use a computer with a large screen and keep the
  browser window large (full screen is best); you will be told if the window is too small.
* Some images appear more than once. That is intended: rate each showing on its own.
* First comes a short **calibration**: you see what a 5 and a 1 look like, then rate a few images and are told
  the intended score. Then the study itself begins.
* You can stop at any time and come back later with the same link: you will continue where you stopped.
"""

DATA = """
**What is stored:** your answers, how long each answer took and when it was given, linked to a random rater
number (not to your name or e-mail address). The answers are used for research on image quality and may be
published in anonymous form. Taking part is voluntary; you may stop at any time without giving a reason.
"""


def _agree(token: str) -> None:
    try:
        common.store().give_consent(token)
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

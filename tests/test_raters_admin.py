"""The admin page of the rater app in AppTest: the password and its sign-in throttle, progress, gold,
export, invite and close, and a database caption without the password.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import raters_app_helpers
from raters_app_helpers import N_CALIBRATION, PASSWORD, PER_RATER, STUDY, button, run_app, sign_in, start, texts
from sqlalchemy.engine import make_url

from sreval.study import StudyStore, open_study_store

template = raters_app_helpers.template
fresh_server = raters_app_helpers.fresh_server


def test_admin_needs_the_password(url: str, store: StudyStore) -> None:
    start(store, rated=2)
    at = sign_in(url, "wrong")
    assert at.warning[0].value == "Wrong password." and not at.dataframe and not at.download_button
    assert at.text_input[0].value == ""  # the typed password is not kept
    at = run_app(url, admin="1")
    at.secrets.pop("admin_password_hash")
    at = at.run()
    assert "No admin password is set" in at.error[0].value and not at.text_input
    at.secrets["admin_password_hash"] = "plain text"
    at = at.run()
    at.text_input[0].input(PASSWORD)
    at = button(at, "Sign in").click().run()
    assert "not usable" in at.warning[0].value and not at.dataframe


def test_admin_progress_gold_export_invite_close(url: str, store: StudyStore) -> None:
    start(store, rated=PER_RATER, score=3)  # rates every gold item 3: no failure
    start(store, rated=N_CALIBRATION + 1)
    kinds = store.stimuli(STUDY).set_index("public_id")["kind"]
    ((_, failing),) = store.invite(STUDY, 1)
    store.give_consent(failing)
    while (item := store.next_item(failing)) is not None:  # rates gold HR 1 and gold NN 5: two failures
        score = {"gold_hr": 1, "gold_nn": 5}.get(str(kinds[item.stimulus]), 3)
        store.submit(failing, item.stimulus, item.repetition, score, 1000)

    at = sign_in(url)
    assert not at.exception and not at.warning
    studies, raters, methods, gold = (d.value for d in at.dataframe)
    assert studies["name"].tolist() == [STUDY]
    assert raters.set_index("rater")["done"].to_dict() == {"r01": PER_RATER, "r02": N_CALIBRATION + 1, "r03": PER_RATER}
    assert raters.set_index("rater")["gold_failures"].to_dict() == {"r01": 0, "r02": 0, "r03": 2}
    assert methods["method"].tolist() == ["nn", "bicubic"] and methods["done"].sum() > 0
    assert set(gold["rater"]) == {"r03"} and sorted(gold["kind"]) == ["gold_hr", "gold_nn"]
    assert "Rule: a gold HR item rated 2 or lower" in texts(at)
    total = 2 * PER_RATER + N_CALIBRATION + 1
    assert at.get("download_button")[0].label == f"Download {total} ratings (CSV)"
    at = at.checkbox(key="export-calibration").uncheck().run()
    assert at.get("download_button")[0].label == f"Download {total - 3 * N_CALIBRATION} ratings (CSV)"

    at.number_input(key="invite-n").set_value(2)
    at.text_input(key="invite-base").input("https://mos.example.org/")
    at = button(at, "Create links").click().run()
    links = at.code[0].value.splitlines()
    assert [line.split("\t")[0] for line in links] == ["r04", "r05"]
    token = re.fullmatch(r"r04\thttps://mos\.example\.org/\?token=([A-Za-z0-9_-]{43})", links[0])
    assert token is not None and store.rater_for_token(token[1]) is not None

    close = button(at, "Close study")
    assert close.disabled
    at = at.checkbox(key=f"confirm-close-{STUDY}").check().run()
    at = button(at, "Close study").click().run()
    assert store.study(STUDY).closed_at is not None
    assert at.success[0].value.startswith(f"Study {STUDY} closed at")
    assert not [b for b in at.button if b.label in ("Close study", "Create links")]
    at = button(at, "Sign out").click().run()
    assert at.text_input[0].label == "Admin password" and not at.dataframe


@pytest.mark.postgres
def test_admin_caption_masks_the_database_password(pg_database_url: str, template: Path) -> None:
    """A password with '@' and ':' (percent-encoded in the URL, as it must be): not on the admin page."""
    url = make_url(pg_database_url).set(password="s3cr@t:pw").render_as_string(hide_password=False)
    assert "s3cr%40t%3Apw" in url
    with open_study_store(url) as store:
        assert "s3cr" not in store.url
    at = sign_in(url)
    assert not at.exception and f"Database: {url.replace('s3cr%40t%3Apw', '***')}" in texts(at)
    assert "s3cr" not in texts(at)


def test_admin_sign_in_backs_off(url: str, caplog: pytest.LogCaptureFixture, fresh_server: None) -> None:
    at = run_app(url, admin="1")
    messages = []
    for _ in range(5):
        at.text_input[0].input("guess")
        at = button(at, "Sign in").click().run()
        messages.append(at.warning[0].value)
    assert messages[:3] == ["Wrong password."] * 3
    assert all(m.startswith("Too many failed sign-ins: try again in") for m in messages[3:])
    at.text_input[0].input(PASSWORD)  # the right password must wait as well
    at = button(at, "Sign in").click().run()
    assert at.warning[0].value.startswith("Too many failed sign-ins") and not at.dataframe
    assert "failed admin sign-in from" in caplog.text and "refused admin sign-in from" in caplog.text

"""The rater app for real: the Streamlit server in headless Chromium (Playwright).

End to end: open an invite link, consent, look at the anchors, calibrate, rate by keyboard and by clicking (one
double click), check the image is shown pixel for pixel and the too-small warning, kill the app server and
restart it, reload the link and resume at the next item, finish, come back (nothing left to rate), then download
the export from the admin page; the database must hold each item once, in order, with response times. Also: an
image that cannot be shown takes no answer, no answer is dropped silently when the server restarts, and the
app's own config keeps tracebacks from raters. (50 raters at once: test_raters_load.py.)
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from pathlib import Path
from typing import Any

import browser_helpers
import raters_app_helpers
from browser_helpers import (
    ROOT,
    SETTLED,
    TIMEOUT_MS,
    AppServer,
    current,
    open_page,
    rated,
    rater_at_test_phase,
    stimulus_geometry,
    wait_until,
)
from raters_app_helpers import (
    BUTTONS,
    LEAKS,
    N_CALIBRATION,
    N_TEST_PHASE,
    PASSWORD,
    PER_RATER,
    STUDY,
    UNSHOWABLE,
    private_stimuli,
    ratings_table,
)

from sreval.study import (
    EXPORT_COLUMNS,
    invite_link,
    open_study_store,
)

template = raters_app_helpers.template
browser = browser_helpers.browser
server = browser_helpers.server


def test_rate_in_the_browser_resume_after_server_kill_and_export(browser: Any, server: AppServer) -> None:
    url = server.env["SREVAL_DB"]
    with open_study_store(url) as store:
        ((rater, token),) = store.invite(STUDY, 1)
        link = invite_link(server.base, token)
        schedule = store.schedule(STUDY, rater)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    intended: list[int] = []  # the score given at each schedule position

    def wait_for(progress: str, position: int) -> None:
        """Until the item at `position` of the schedule is drawn (not just its progress text: the previous
        item's buttons and image stay on the page until the new ones replace them)."""
        page.get_by_text(progress, exact=True).wait_for()
        page.wait_for_function(
            "position => document.querySelector('.sreval-stage')?.dataset.render.startsWith(`${position}-`)",
            arg=position,
        )

    def answer(score: int, how: str) -> None:
        if how == "key":
            page.keyboard.press(str(score))
        elif how == "double-click":  # the second click replays the first: the store answers already_recorded
            page.get_by_role("button", name=BUTTONS[score - 1], exact=True).dblclick()
        else:
            page.get_by_role("button", name=BUTTONS[score - 1], exact=True).click()
        intended.append(score)

    page.goto(link)
    page.get_by_text("I have read the above and agree to take part.").click()
    page.get_by_role("button", name="Start", exact=True).click()

    page.get_by_text("This is an example of 5 – Excellent").wait_for()
    page.locator(".sreval-stage img").nth(1).wait_for()
    assert page.locator(".sreval-stage img").count() == 2
    page.get_by_role("button", name="Start calibration").click()
    for i in range(N_CALIBRATION):
        wait_for(f"Calibration image {i + 1} of {N_CALIBRATION}", i)
        answer(5 if i % 2 else 1, "key" if i % 2 else "click")
        last = i == N_CALIBRATION - 1
        current(page).get_by_text("You answered").wait_for()
        current(page).get_by_role("button", name="Begin the study" if last else "Next image").click()

    hows = ["key", "click", "key", "double-click", "key", "click"]
    for i, how in enumerate(hows):
        wait_for(f"Image {i + 1} of {N_TEST_PHASE}", N_CALIBRATION + i)
        geometry = stimulus_geometry(page)
        assert geometry["shown"] == geometry["natural"] and geometry["fits"] == "yes"
        assert geometry["warning"] == "none"
        if i == 2:  # a window smaller than the image: warned, and the image is still not scaled
            page.set_viewport_size({"width": 200, "height": 200})
            page.wait_for_function("document.querySelector('.sreval-stage').dataset.fits === 'no'")
            geometry = stimulus_geometry(page)
            assert geometry["shown"] == geometry["natural"] and geometry["warning"] == "block"
            assert page.get_by_text("Your browser window is too small").is_visible()
            page.set_viewport_size({"width": 1280, "height": 900})
            page.wait_for_function("document.querySelector('.sreval-stage').dataset.fits === 'yes'")
        answer(1 + i % 5, how)
    # The double click answered one item, not two:
    wait_for(f"Image {len(hows) + 1} of {N_TEST_PHASE}", N_CALIBRATION + len(hows))

    server.kill()  # the app server dies; the rater comes back later with the same link
    server.start()
    page.goto(link)
    wait_for(f"Image {len(hows) + 1} of {N_TEST_PHASE}", N_CALIBRATION + len(hows))
    for i in range(len(hows), N_TEST_PHASE):
        wait_for(f"Image {i + 1} of {N_TEST_PHASE}", N_CALIBRATION + i)
        answer(5 - i % 5, "key" if i % 2 else "click")
    page.get_by_text("Thank you!").wait_for()
    page.goto(link)  # a finished rater cannot rate again
    page.get_by_text(f"All {PER_RATER} of your answers are saved").wait_for()
    assert page.get_by_role("button", name=BUTTONS[2]).count() == 0

    with open_study_store(url) as store:
        ratings = store.export(STUDY)
        view = store.rater_for_token(token)
    assert view is not None and view.finished
    assert len(ratings) == PER_RATER and not ratings.duplicated(["stimulus", "repetition"]).any()
    assert list(zip(ratings["stimulus"], ratings["repetition"], strict=True)) == list(
        zip(schedule["stimulus"], schedule["repetition"], strict=True)
    )
    assert ratings["score"].tolist() == intended
    assert (ratings["response_ms"] > 0).all() and ratings["created_at"].is_monotonic_increasing

    page.goto(f"{server.base}?admin=1")
    page.get_by_label("Admin password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Progress per rater").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name=f"Download {PER_RATER} ratings (CSV)").click()
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert tuple(exported[0]) == EXPORT_COLUMNS and len(exported) == PER_RATER
    assert [int(r["score"]) for r in exported] == intended
    page.close()


def test_an_image_that_cannot_be_shown_takes_no_answer(
    browser: Any, server: AppServer, template: Path, tmp_path: Path
) -> None:
    url = server.env["SREVAL_DB"]
    private_stimuli(url, template, tmp_path)
    token, link = rater_at_test_phase(url, server.base)
    with open_study_store(url) as store:
        item = store.next_item(token)
    assert item is not None
    item.image_path.unlink()  # the scheduled stimulus file is gone
    before = ratings_table(url)
    page = open_page(browser, link)
    page.get_by_text(UNSHOWABLE).wait_for()
    for key in "12345":
        page.keyboard.press(key)
    for label in BUTTONS:  # no answer button exists, visible or not
        assert page.get_by_role("button", name=label).count() == 0
        assert page.get_by_text(label, exact=True).count() == 0
    page.mouse.click(200, 200)
    time.sleep(1.5)
    assert ratings_table(url) == before
    body = page.inner_text("body")
    for leak in (*LEAKS, item.image_path.name, "cannot be read"):
        assert leak not in body, leak
    page.close()


def test_no_answer_is_dropped_silently_when_the_server_restarts(browser: Any, server: AppServer) -> None:
    """The app server is SIGKILLed and restarted while the rater's page stays open; the rater answers at once,
    by key and by click. Each answer is stored, or the page says it was not; then, as soon as the page is
    connected again, the first key press answers."""
    url = server.env["SREVAL_DB"]
    token, link = rater_at_test_phase(url, server.base)
    page = open_page(browser, link)
    banner = page.locator("#sreval-not-saved")
    outcomes = []
    for how in ["key", "click", "key", "click", "key", "click"]:
        done = rated(url, token)
        page.wait_for_function(SETTLED, arg=done)
        server.kill()
        server.start()
        if how == "key":
            page.keyboard.press("4")
        else:
            page.get_by_role("button", name=BUTTONS[3], exact=True).click()

        def stored(done: int = done) -> bool:
            return rated(url, token) > done

        assert wait_until(lambda: stored() or banner.is_visible(), 15), f"answer by {how} neither stored nor refused"
        if banner.is_visible():
            assert not stored(), "the page said 'not saved' for a stored answer"
            assert "answer again" in banner.inner_text()
            refusal = banner.inner_text()
            page.wait_for_function(SETTLED, arg=done)
            page.keyboard.press("4")
            assert wait_until(stored, 10), f"the first key after reconnecting was not stored ({banner.inner_text()})"
            assert not banner.is_visible()
            outcomes.append(f"{how}: refused ({refusal}), then stored")
        else:
            outcomes.append(f"{how}: stored")
    with open_study_store(url) as store:
        ratings = store.export(STUDY).query("rater == 'r01'")
    assert len(ratings) == N_CALIBRATION + 6 and (ratings["score"].iloc[N_CALIBRATION:] == 4).all(), outcomes
    print("\n".join(outcomes))
    page.close()


def test_the_apps_own_config_keeps_tracebacks_from_raters(browser: Any, tmp_path: Path) -> None:
    """Started with no flags beyond address and port, from another folder and with an empty home: a script
    beside app.py that fails shows no traceback, no exception text and no path."""
    app = tmp_path / "raters_app"
    shutil.copytree(ROOT / "raters_app", app, ignore=shutil.ignore_patterns("__pycache__", "secrets.toml"))
    (app / "fails.py").write_text('raise RuntimeError("cannot open /srv/secret/stimuli/a1b2.png")\n')
    server = AppServer("sqlite://", tmp_path / "streamlit.log", script=app / "fails.py", cwd=tmp_path)
    server.env["HOME"] = str(tmp_path)
    server.start()
    try:
        page = open_page(browser, server.base)
        page.get_by_text("This app has encountered an error").wait_for()
        body = page.inner_text("body")
        for leak in ("Traceback", "RuntimeError", "/srv/secret", "a1b2", "fails.py"):
            assert leak not in body, leak
        page.close()
    finally:
        server.stop()

"""The rater app for real: the Streamlit server in headless Chromium (Playwright), and 50 raters at once.

* End to end: open an invite link, consent, look at the anchors, calibrate, rate by keyboard and by clicking
  (one double click), check the image is shown pixel for pixel and the too-small warning, kill the app server
  and restart it, reload the link and resume at the next item, finish, come back (nothing left to rate), then
  download the export from the admin page; the database must hold each item once, in order, with response
  times.
* Load: 50 raters submit concurrently (threads of one writing process, through `StudyStore`, the app's only
  path to the database), each also sending bad requests (scores 0, 6, "abc", a forged and a foreign stimulus,
  another rater's token, replays), on SQLite and PostgreSQL; the writing process is SIGKILLed once mid-run and
  restarted. Every acknowledged rating must be stored, every scheduled item rated exactly once, no bad
  request stored.

The browser test skips without Playwright or /usr/bin/chromium, unless SREVAL_REQUIRE_BROWSER=1 (CI), where
it fails instead. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from test_raters_app import (
    ADMIN_HASH,
    BUTTONS,
    LEAKS,
    N_CALIBRATION,
    N_TEST_PHASE,
    PASSWORD,
    PER_RATER,
    STUDY,
    UNSHOWABLE,
    build_pilot,
    copy_database,
    private_stimuli,
    ratings_table,
    start,
)

from sreval.imageio import save_png
from sreval.study import EXPORT_COLUMNS, StudyStore, invite_link, open_study_store
from sreval.study import DraftImage, DraftMethod, DraftStimulus, StudyDraft

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "raters_app" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
RATERS = 50
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    root = tmp_path_factory.mktemp("browser-template")
    with open_study_store(f"sqlite:///{root / 'study.sqlite'}") as store:
        build_pilot(store, root, data_root)
    return root


# --- the app server -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppServer:
    """`streamlit run raters_app/app.py` on a local port, on the database `url`; can be killed and restarted."""

    def __init__(self, url: str, log: Path, script: Path = APP, cwd: Path = ROOT) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.log = log
        self.env = {**os.environ, "SREVAL_DB": url, "SREVAL_ADMIN_HASH": ADMIN_HASH}
        self.script, self.cwd = script, cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """`streamlit run` with only the address, the port and no file watcher: everything else comes from the
        app's own `.streamlit/config.toml`, as in a deployment that follows the README."""
        command = [
            sys.executable, "-m", "streamlit", "run", str(self.script), "--server.address", "127.0.0.1",
            "--server.port", str(self.port), "--server.fileWatcherType", "none",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}_stcore/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the app server did not come up: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def require_browser() -> Any:
    """Playwright's sync API with the system Chromium, or a skip (a failure when SREVAL_REQUIRE_BROWSER=1)."""
    required = os.environ.get("SREVAL_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail("SREVAL_REQUIRE_BROWSER=1 but playwright is not installed (pip install -e '.[test]')")
        pytest.skip("playwright is not installed")
    if not CHROMIUM.is_file():
        if required:
            pytest.fail(f"SREVAL_REQUIRE_BROWSER=1 but there is no {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    return sync_playwright


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_playwright = require_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def server(template: Path, tmp_path: Path) -> Iterator[AppServer]:
    app = AppServer(copy_database(template, tmp_path), tmp_path / "streamlit.log")
    app.start()
    try:
        yield app
    finally:
        app.stop()


# --- end to end ---------------------------------------------------------------------------------------------


def stimulus_geometry(page: Any) -> dict[str, Any]:
    """Natural and shown size of the page's stimulus, and whether the app thinks it fits the window."""
    geometry: dict[str, Any] = page.evaluate(
        """() => { const img = document.querySelector('.sreval-stage img');
        return {natural: [img.naturalWidth, img.naturalHeight], shown: [img.clientWidth, img.clientHeight],
                fits: img.closest('.sreval-stage').dataset.fits,
                warning: getComputedStyle(document.querySelector('.sreval-too-small')).display}; }"""
    )
    return geometry


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
        page.get_by_text("You answered").wait_for()
        page.get_by_role("button", name="Begin the study" if last else "Next image").click()

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


def rater_at_test_phase(url: str, base: str) -> tuple[str, str]:
    """A new rater who has consented and answered the calibration (through the store): token and link."""
    with open_study_store(url) as store:
        token = start(store, rated=N_CALIBRATION)
    return token, invite_link(base, token)


def rated(url: str, token: str) -> int:
    with open_study_store(url) as store:
        view = store.rater_for_token(token)
    assert view is not None
    return view.done


def open_page(browser: Any, link: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(link)
    return page


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


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


#: True when the page shows the item at schedule position `arg`, its image drawn, as a whole page (the page's
#: closing marker is the one of the run that drew the stage) and connected (the buttons are enabled).
SETTLED = """position => {
  const stage = document.querySelector(`.sreval-stage[data-item="${position}"][data-loaded="yes"]`);
  const markers = document.querySelectorAll("[data-sreval-page]");
  const buttons = Array.from(document.querySelectorAll("button")).filter((b) => /^[1-5] /.test(b.innerText));
  return Boolean(stage) && markers.length > 0 && markers[markers.length - 1].dataset.srevalPage === stage.dataset.page
    && buttons.length === 5 && buttons.every((b) => !b.disabled && b.checkVisibility());
}"""


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


# --- load: 50 raters, the writing process killed once ---------------------------------------------------------

#: The writing process: every rater (token) of TOKENS in its own thread, rating through StudyStore until done,
#: and before each answer sending bad requests that must all be refused (or answered as replays). Each
#: acknowledged rating is appended to LOG (one line, one write) after `submit` returned.
WRITER = r"""
import os, sys, threading, zlib
from sreval.study import RequestRefused, open_study_store

url, tokens_file, log_file, foreign_token = sys.argv[1:5]
tokens = open(tokens_file).read().split()
log = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
store = open_study_store(url)
failures = []

def score_for(index, stimulus):
    return 1 + zlib.crc32(f"{index}/{stimulus}".encode()) % 5

def must_refuse(*args):
    try:
        store.submit(*args)
    except RequestRefused:
        return
    failures.append(f"not refused: {args[1:]}")

def rate(index):
    token = tokens[index]
    store.give_consent(token)
    previous = None
    while (item := store.next_item(token)) is not None:
        score = score_for(index, item.stimulus)
        if item.position % 3 == index % 3:
            for bad in (0, 6, "abc"):
                must_refuse(token, item.stimulus, item.repetition, bad, 1000)
            must_refuse(token, "forgedstimulus00", item.repetition, score, 1000)
            must_refuse(token, "foreignstimulus1", item.repetition, score, 1000)
            must_refuse(foreign_token, item.stimulus, item.repetition, score, 1000)  # another rater's token
            must_refuse(token + "x", item.stimulus, item.repetition, score, 1000)  # a forged one
            if previous is not None:
                stimulus, repetition, given = previous
                replay = store.submit(token, stimulus, repetition, given, 1000)
                if replay.status != "already_recorded":
                    failures.append(f"replay answered {replay.status}")
                must_refuse(token, stimulus, repetition, 1 + given % 5, 1000)
        result = store.submit(token, item.stimulus, item.repetition, score, 500 + index)
        os.write(log, f"{index} {item.stimulus} {item.repetition} {score} {result.status}\n".encode())
        previous = (item.stimulus, item.repetition, score)

threads = [threading.Thread(target=rate, args=(i,)) for i in range(len(tokens))]
for t in threads:
    t.start()
for t in threads:
    t.join()
if failures:
    print("\n".join(failures[:20]), file=sys.stderr)
    sys.exit(3)
"""


def count_ratings(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM study_ratings")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def load_url(request: pytest.FixtureRequest, template: Path, tmp_path: Path, data_root: Path) -> str:
    """The pilot study with 50 invited raters, on SQLite (a copy of the template) or on a new PostgreSQL
    database (built there; the stimulus files go to the test's folder)."""
    if request.param == "sqlite":
        url = copy_database(template, tmp_path)
    else:
        url = str(request.getfixturevalue("pg_database_url"))
        with open_study_store(url) as store:
            build_pilot(store, tmp_path, data_root)
    return url


def test_50_concurrent_raters_with_the_writer_killed_lose_and_duplicate_nothing(load_url: str, tmp_path: Path) -> None:
    with open_study_store(load_url) as store:
        foreign_token = add_foreign_study(store, tmp_path)
        invitations = store.invite(STUDY, RATERS)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(token for _, token in invitations))
    log = tmp_path / "acknowledged.txt"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    total = RATERS * PER_RATER
    command = [sys.executable, str(script), load_url, str(tokens), str(log), foreign_token]

    writer = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (stored := count_ratings(load_url)) < total // 3:
        assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
        assert time.monotonic() < deadline, f"only {stored} ratings after 120 s"
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    at_kill = count_ratings(load_url)
    assert 0 < at_kill < total, "the writer must be killed mid-run"

    restarted = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert restarted.returncode == 0, restarted.stderr[-3000:]

    with open_study_store(load_url) as store:
        ratings = store.export(STUDY)
        schedules = {rater: store.schedule(STUDY, rater) for rater, _ in invitations}
        status = store.status(STUDY)
    assert len(ratings) == total == count_ratings(load_url) - 1  # (the foreign study's one rating)
    assert not ratings.duplicated(["rater", "stimulus", "repetition"]).any()
    for rater, schedule in schedules.items():  # every scheduled item rated exactly once
        mine = ratings[ratings["rater"] == rater]
        assert sorted(zip(mine["stimulus"], mine["repetition"], strict=True)) == sorted(
            zip(schedule["stimulus"], schedule["repetition"], strict=True)
        )
    assert status.raters["finished_at"].notna().all() and (status.raters["done"] == PER_RATER).all()
    stored = {(r.rater, r.stimulus, int(r.repetition)): int(r.score) for r in ratings.itertuples()}
    number = {rater: i for i, (rater, _) in enumerate(invitations)}
    for (rater, stimulus, _), score in stored.items():  # no bad request got in
        assert score == 1 + zlib.crc32(f"{number[rater]}/{stimulus}".encode()) % 5
    acknowledged = [line.split() for line in log.read_text().splitlines() if line.count(" ") == 4]
    assert len(acknowledged) >= total - at_kill  # the second run alone acknowledged that many
    for index, stimulus, repetition, score, _ in acknowledged:  # every acknowledged rating is stored as sent
        assert stored[invitations[int(index)].rater, stimulus, int(repetition)] == int(score)


def add_foreign_study(store: StudyStore, tmp_path: Path) -> str:
    """A second study, whose one stimulus id (`foreignstimulus1`) is foreign to the pilot's raters, rated once
    by its one rater; returns that rater's token (another study's rater, consented: a real but foreign token)."""
    save_png(tmp_path / "other" / "x.png", np.zeros((8, 8, 3), np.uint8))
    store.create_study(
        StudyDraft(
            "other", tmp_path / "other", 1, {"retest": 0.0}, [DraftMethod("m", {})],
            [DraftImage("set5", "bird", "0" * 64)],
            [DraftStimulus("foreignstimulus1", "test", "m", "set5", "bird", "x.png", None)],
        )
    )  # fmt: skip
    ((_, token),) = store.invite("other", 1)
    store.give_consent(token)
    store.submit(token, "foreignstimulus1", 1, 3, 100)
    return token

"""What the tests of the rater app for real share: the Streamlit server on a local port (killable and
restartable), headless Chromium through Playwright, and helpers that prepare raters and read the page.

The browser skips without Playwright or /usr/bin/chromium, unless SREVAL_REQUIRE_BROWSER=1 (CI), where it fails
instead. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from db_helpers import copy_database
from raters_app_helpers import (
    ADMIN_HASH,
    N_CALIBRATION,
    start,
)

from sreval.study import (
    invite_link,
    open_study_store,
)

ROOT = Path(__file__).resolve().parents[1]


APP = ROOT / "raters_app" / "app.py"


CHROMIUM = Path("/usr/bin/chromium")


CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip


RATERS = 50


TIMEOUT_MS = 20_000


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

    #: Extra arguments for the server's Popen (a subclass may start it in a process group of its own).
    popen_options: dict[str, Any] = {}  # noqa: RUF012 - never mutated, only replaced by a subclass

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """`streamlit run` with only the address, the port and no file watcher: everything else comes from the
        app's own `.streamlit/config.toml`, as in a deployment that follows the README. Does not wait for it
        (`wait_ready`), so that several servers can start side by side."""
        command = [
            sys.executable, "-m", "streamlit", "run", str(self.script), "--server.address", "127.0.0.1",
            "--server.port", str(self.port), "--server.fileWatcherType", "none",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, **self.popen_options
            )

    def wait_ready(self, seconds: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + seconds
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


def stimulus_geometry(page: Any) -> dict[str, Any]:
    """Natural and shown size of the page's stimulus, and whether the app thinks it fits the window."""
    geometry: dict[str, Any] = page.evaluate(
        """() => { const img = document.querySelector('.sreval-stage img');
        return {natural: [img.naturalWidth, img.naturalHeight], shown: [img.clientWidth, img.clientHeight],
                fits: img.closest('.sreval-stage').dataset.fits,
                warning: getComputedStyle(document.querySelector('.sreval-too-small')).display}; }"""
    )
    return geometry


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


def current(page: Any) -> Any:
    """The elements of the page's latest run. While a run is in progress Streamlit keeps the previous run's
    elements on the page, marked stale, until they are replaced: a click on a stale button (e.g. "Next image" of
    the previous feedback page, while an answer's run is drawing the new one) would interrupt that run."""
    return page.locator('[data-testid="stElementContainer"][data-stale="false"]')


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

"""What the rater app tests share (AppTest here, a browser in test_raters_browser.py): one small study (Set5
bird/butterfly/head × nn, bicubic; 1 gold image; 2 calibration images; 2 retest items: 4 calibration and 10
test-phase items per rater) rendered once per test module by `template` (conftest.py's `url` and `store` follow
it), each test getting its own copy of the database; the app run on it, and helpers that read its page or answer
through the store.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from db_helpers import execute, query_rows
from study_helpers import RATING_STATE, make_calibration_folder

from sreval.study import StudyStore, hash_password, open_study_store
from sreval.study.builder import build_study
from sreval.vocabulary import SCORE_LABELS

pytest.importorskip("streamlit")


import streamlit as st
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "raters_app" / "app.py"


STUDY = "pilot"


N_CALIBRATION, N_TEST_PHASE = 4, 10


PER_RATER = N_CALIBRATION + N_TEST_PHASE


BUTTONS = [f"{score} {label.capitalize()}" for score, label in SCORE_LABELS.items()]


PASSWORD = "correct horse"


#: A cheap hash (1000 iterations) so that the admin tests stay fast; the format is the production one.
ADMIN_HASH = hash_password(PASSWORD, iterations=1000, salt="testsalt")


def build_pilot(store: StudyStore, root: Path, data_root: Path, name: str = STUDY, seed: int = 11) -> None:
    """The small study of these tests, with noise images (outside the test set) for calibration."""
    calibration = make_calibration_folder(root / "calibration", 2)
    build_study(
        store, name, ["nn", "bicubic"], ["set5"], data_root=data_root, images=["bird", "butterfly", "head"],
        retest=0.34, gold_images=1, calibration_images=2, calibration_dir=calibration, folder=root / "stimuli",
        seed=seed,
    )  # fmt: skip


def ratings_table(url: str) -> list[tuple[Any, ...]]:
    """Every stored rating and rater row: what a refused request must leave as it was."""
    ratings, raters = query_rows(url, *RATING_STATE)
    return ratings + raters


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    root = tmp_path_factory.mktemp("app-template")
    with open_study_store(f"sqlite:///{root / 'study.sqlite'}") as store:
        build_pilot(store, root, data_root)
    return root


def run_app(url: str, **query: str) -> AppTest:
    """The app on database `url`, opened with the query parameters `query`, after its first run."""
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.secrets["db_url"] = url
    at.secrets["admin_password_hash"] = ADMIN_HASH
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def button(at: AppTest, label: str) -> Any:
    matches = [b for b in at.button if b.label == label]
    assert len(matches) == 1, f"{label!r} not among {[b.label for b in at.button]}"
    return matches[0]


def texts(at: AppTest) -> str:
    """Every visible text of the last run, one per line."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "success", "info", "warning", "error"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [p.text for p in at.progress]
    return "\n".join(parts)


def stages(at: AppTest) -> list[str]:
    """The HTML of every stimulus shown on the page (other HTML elements carry no image)."""
    return [h.value for h in at.html if "sreval-stage" in h.value]


def shown_image(at: AppTest) -> tuple[bytes, str]:
    """The PNG bytes of the one stimulus on the page, and its HTML."""
    (html,) = stages(at)
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert match is not None
    return base64.b64decode(match[1]), html


def start(store: StudyStore, *, consent: bool = True, rated: int = 0, score: int = 3) -> str:
    """A new rater's token, with consent given and the first `rated` items answered through the store."""
    ((_, token),) = store.invite(STUDY, 1)
    if consent:
        store.give_consent(token)
    for _ in range(rated):
        item = store.next_item(token)
        assert item is not None
        store.submit(token, item.stimulus, item.repetition, score, 1000)
    return token


def answer(at: AppTest, score: int) -> AppTest:
    clicked: AppTest = button(at, BUTTONS[score - 1]).click().run()
    return clicked


def sign_in(url: str, password: str = PASSWORD) -> AppTest:
    at = run_app(url, admin="1")
    assert at.title[0].value == "Study administration"
    at.text_input[0].input(password)
    signed_in: AppTest = button(at, "Sign in").click().run()
    return signed_in


UNSHOWABLE = "This image cannot be shown. Please tell the organiser of the study."


GENERIC = "The study cannot be reached just now"


#: What must never reach a rater's page: server paths, the database, Python's error vocabulary.
LEAKS = ("Traceback", "sqlite", "database", "locked", "Error", "/tmp", "/work", ".png", ".py")


def private_stimuli(url: str, template: Path, target: Path) -> Path:
    """A copy of the template's stimulus folder for one test (which may damage it), stored as the study's."""
    folder = target / "stimuli"
    shutil.copytree(template / "stimuli", folder)
    execute(url, "UPDATE studies SET folder = :f", f=str(folder))
    return folder


def assert_nothing_leaks(at: AppTest) -> None:
    assert not at.exception
    page = texts(at)
    for leak in LEAKS:
        assert leak not in page, (leak, page)


def lock_database(url: str) -> Any:
    """Another connection holding SQLite's write lock (as a long writer would); `.close()` releases it."""
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


@pytest.fixture
def fresh_server() -> None:
    """A server that has seen no sign-in yet (the back-off lives in the server's resources)."""
    st.cache_resource.clear()

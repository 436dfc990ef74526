"""The rater app page by page, in Streamlit's AppTest (no browser): routing by link, consent, calibration
(anchors, feedback), rating (native-size image, buttons, response time), resume, thanks, closed study,
invalid and foreign links, stale answers, and the admin page (password, progress, gold, export, invite, close).

One small study (Set5 bird/butterfly/head × nn, bicubic; 1 gold image; 2 calibration images; 2 retest items:
4 calibration and 10 test-phase items per rater) is rendered once per module; each test gets its own copy of
the database. `build_pilot` is also used by test_raters_browser.py.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sreval.errors import SrevalError
from sreval.imageio import save_png
from sreval.study import SCORE_LABELS, StudyStore, hash_password, open_study_store
from sreval.study.builder import build_study

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
    calibration = root / "calibration"
    calibration.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    for i in range(2):
        save_png(calibration / f"cal{i}.png", rng.integers(0, 256, (48 + 4 * i, 64, 3), dtype=np.uint8))
    build_study(
        store, name, "nn,bicubic", "set5", data_root=data_root, images=["bird", "butterfly", "head"], retest=0.34,
        gold_images=1, calibration_images=2, calibration_dir=calibration, folder=root / "stimuli", seed=seed,
    )  # fmt: skip


def copy_database(template: Path, target: Path) -> str:
    """A private copy of a template's SQLite database (the stimulus files stay shared: they are only read)."""
    for suffix in ("", "-wal"):
        if (template / f"study.sqlite{suffix}").exists():
            shutil.copy(template / f"study.sqlite{suffix}", target / f"study.sqlite{suffix}")
    return f"sqlite:///{target / 'study.sqlite'}"


def ratings_table(url: str) -> list[tuple[Any, ...]]:
    """Every stored rating and rater row: what a refused request must leave as it was."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ratings = [tuple(r) for r in conn.execute(text("SELECT * FROM study_ratings ORDER BY id"))]
            raters = [tuple(r) for r in conn.execute(text("SELECT * FROM study_raters ORDER BY id"))]
    finally:
        engine.dispose()
    return ratings + raters


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    root = tmp_path_factory.mktemp("app-template")
    with open_study_store(f"sqlite:///{root / 'study.sqlite'}") as store:
        build_pilot(store, root, data_root)
    return root


@pytest.fixture
def url(template: Path, tmp_path: Path) -> str:
    return copy_database(template, tmp_path)


@pytest.fixture
def store(url: str) -> Iterator[StudyStore]:
    with open_study_store(url) as opened:
        yield opened


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
    return button(at, BUTTONS[score - 1]).click().run()


# --- rater pages ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "forged", "", "x" * 500])
def test_invalid_link(url: str, token: str | None) -> None:
    at = run_app(url) if token is None else run_app(url, token=token)
    assert not at.exception
    assert at.title[0].value == "This link is not valid"
    assert not at.button and not stages(at)


def test_consent_then_anchors(url: str, store: StudyStore) -> None:
    token = start(store, consent=False)
    at = run_app(url, token=token)
    assert at.title[0].value == "Image quality study"
    assert "Excellent" in texts(at) and f"There are **{PER_RATER}** images" in texts(at)
    assert button(at, "Start").disabled and not stages(at)  # no image before consent
    view = store.rater_for_token(token)
    assert view is not None and not view.consent_given

    at = at.checkbox[0].check().run()
    at = button(at, "Start").click().run()
    view = store.rater_for_token(token)
    assert view is not None and view.consent_given and view.done == 0
    # The anchors: a 5 and a 1 of the same calibration image, from the rater's own calibration items.
    assert [s.value for s in at.subheader] == ["This is an example of 5 – Excellent", "This is an example of 1 – Bad"]
    stimuli = store.stimuli(STUDY).set_index("public_id")
    shown = [base64.b64decode(re.findall(r"base64,([A-Za-z0-9+/=]+)", h)[0]) for h in stages(at)]
    files = {Path(row.path).read_bytes(): (row.kind, row.image) for row in stimuli.itertuples()}
    (kind5, image5), (kind1, image1) = files[shown[0]], files[shown[1]]
    assert (kind5, kind1) == ("calibration_hr", "calibration_nn") and image5 == image1
    assert not [b for b in at.button if b.label in BUTTONS]  # anchors are shown, not rated


def test_calibration_items_give_feedback(url: str, store: StudyStore) -> None:
    token = start(store)
    at = run_app(url, token=token)
    at = button(at, "Start calibration").click().run()
    for i in range(N_CALIBRATION):
        assert at.progress[0].text == f"Calibration image {i + 1} of {N_CALIBRATION}"
        item = store.next_item(token)
        assert item is not None and item.anchor in (1, 5) and item.phase == "calibration"
        data, _ = shown_image(at)
        assert data == item.image_path.read_bytes()
        right = i % 2 == 0
        score = item.anchor if right else 3
        at = answer(at, score)
        if right:
            assert "that is the intended score" in at.success[0].value
        else:
            label = f"{item.anchor} – {SCORE_LABELS[item.anchor].capitalize()}"
            assert at.info[0].value == f"You answered 3 – Fair. This image is an example of {label}."
        last = i == N_CALIBRATION - 1
        at = button(at, "Begin the study" if last else "Next image").click().run()
    assert at.progress[0].text == f"Image 1 of {N_TEST_PHASE}"
    ratings = store.export(STUDY)
    assert list(ratings["kind"].str.startswith("calibration")) == [True] * N_CALIBRATION
    assert store.status(STUDY).raters["calibration_misses"].tolist() == [2]


def test_rating_page_shows_the_image_at_native_size_and_records_answers(url: str, store: StudyStore) -> None:
    token = start(store, rated=N_CALIBRATION)
    at = run_app(url, token=token)
    assert not at.exception
    assert at.progress[0].text == f"Image 1 of {N_TEST_PHASE}" and at.progress[0].value == 0
    assert [b.label for b in at.button] == BUTTONS
    item = store.next_item(token)
    assert item is not None and item.phase == "test"
    data, html = shown_image(at)
    assert data == item.image_path.read_bytes()  # the stimulus file itself, not a re-encoded or scaled copy
    width, height = Image.open(item.image_path).size
    assert f'width="{width}" height="{height}"' in html and "max-width:none" in html
    assert 'alt="stimulus"' in html and "sreval-too-small" in html  # neutral alt text; the too-small warning
    info = store.stimuli(STUDY).set_index("public_id").loc[item.stimulus]
    page = "\n".join(h.value for h in at.html) + texts(at)
    page = page.replace(base64.b64encode(data).decode(), "")
    for secret in (item.image_path.stem, str(item.image_path.parent), info["method"], info["image"], "set5"):
        assert not re.search(rf"\b{re.escape(str(secret))}\b", page, re.IGNORECASE), secret

    time.sleep(0.3)
    at = answer(at, 4)
    ratings = store.export(STUDY)
    last = ratings.iloc[-1]
    assert (last["stimulus"], last["score"], len(ratings)) == (item.stimulus, 4, N_CALIBRATION + 1)
    assert 300 <= last["response_ms"] < 30_000  # from first showing to the click
    assert at.progress[0].text == f"Image 2 of {N_TEST_PHASE}"
    following = store.next_item(token)
    assert following is not None and shown_image(at)[0] == following.image_path.read_bytes()


def test_resume_finish_and_finished_rater(url: str, store: StudyStore) -> None:
    token = start(store, rated=N_CALIBRATION + 3)
    at = run_app(url, token=token)  # the same link, later (a new session)
    assert at.progress[0].text == f"Image 4 of {N_TEST_PHASE}"
    for i in range(3, N_TEST_PHASE):
        assert at.progress[0].text == f"Image {i + 1} of {N_TEST_PHASE}"
        at = answer(at, 1 + i % 5)
    assert at.title[0].value == "Thank you!" and not at.button and not stages(at)
    view = store.rater_for_token(token)
    assert view is not None and view.finished and view.done == PER_RATER
    before = ratings_table(url)
    at = run_app(url, token=token)  # a finished rater who comes back cannot rate again
    assert at.title[0].value == "Thank you!" and not at.button
    assert f"All {PER_RATER} of your answers are saved" in at.success[0].value
    assert ratings_table(url) == before


def test_closed_study(url: str, store: StudyStore) -> None:
    token = start(store, rated=N_CALIBRATION)
    never_started = start(store, consent=False)
    at = run_app(url, token=token)
    assert [b.label for b in at.button] == BUTTONS
    store.close_study(STUDY)
    before = ratings_table(url)
    at = answer(at, 3)  # the page was open when the study closed: the answer is refused
    assert at.title[0].value == "This study is closed" and not at.button and not stages(at)
    assert ratings_table(url) == before
    for link in (token, never_started):
        at = run_app(url, token=link)
        assert at.title[0].value == "This study is closed" and not at.button and not stages(at)
    assert ratings_table(url) == before


def test_another_raters_link_and_stale_answers(url: str, store: StudyStore) -> None:
    """Two raters, and one rater in two tabs: each link shows its own rater's item; an answer from a tab whose
    item was answered meanwhile is a replay (same score: nothing changes) or a conflict (refused, shown)."""
    mine = start(store, rated=N_CALIBRATION)
    theirs = start(store, rated=N_CALIBRATION + 2)
    at = run_app(url, token=theirs)
    assert at.progress[0].text == f"Image 3 of {N_TEST_PHASE}"
    tab1, tab2 = run_app(url, token=mine), run_app(url, token=mine)
    assert shown_image(tab1)[0] == shown_image(tab2)[0]
    tab1 = answer(tab1, 2)
    before = ratings_table(url)
    tab2 = answer(tab2, 2)  # the same answer again from the other tab: already recorded, nothing changes
    assert ratings_table(url) == before and not tab2.warning
    assert tab2.progress[0].text == tab1.progress[0].text == f"Image 2 of {N_TEST_PHASE}"
    tab1 = answer(tab1, 5)
    before = ratings_table(url)
    tab2 = answer(tab2, 1)  # a different answer to an answered item: refused
    assert ratings_table(url) == before
    assert "not recorded" in tab2.warning[0].value and "already rated" in tab2.warning[0].value
    scores = store.export(STUDY).query("rater == 'r01'")["score"].tolist()
    assert scores[N_CALIBRATION:] == [2, 5]
    assert store.export(STUDY).query("rater == 'r02'")["score"].tolist() == [3] * (N_CALIBRATION + 2)


def test_database_down_shows_a_message() -> None:
    at = run_app("postgresql+psycopg2://nobody@127.0.0.1:1/none?connect_timeout=1", token="anything")
    assert not at.exception and at.title[0].value == "Please try again later"


# --- admin page -------------------------------------------------------------------------------------------


def sign_in(url: str, password: str = PASSWORD) -> AppTest:
    at = run_app(url, admin="1")
    assert at.title[0].value == "Study administration"
    at.text_input[0].input(password)
    return button(at, "Sign in").click().run()


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


# --- broken stimuli, database errors -------------------------------------------------------------------------

UNSHOWABLE = "This image cannot be shown. Please tell the organiser of the study."
GENERIC = "The study cannot be reached just now"
#: What must never reach a rater's page: server paths, the database, Python's error vocabulary.
LEAKS = ("Traceback", "sqlite", "database", "locked", "Error", "/tmp", "/work", ".png", ".py")


def private_stimuli(url: str, template: Path, target: Path) -> Path:
    """A copy of the template's stimulus folder for one test (which may damage it), stored as the study's."""
    folder = target / "stimuli"
    shutil.copytree(template / "stimuli", folder)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE studies SET folder = :f"), {"f": str(folder)})
    engine.dispose()
    return folder


def assert_nothing_leaks(at: AppTest) -> None:
    assert not at.exception
    page = texts(at)
    for leak in LEAKS:
        assert leak not in page, (leak, page)


@pytest.mark.parametrize("damage", ["deleted", "truncated", "not an image", "a folder", "unreadable"])
def test_a_stimulus_that_cannot_be_shown_gets_no_buttons_and_no_rating(
    url: str, store: StudyStore, template: Path, tmp_path: Path, damage: str
) -> None:
    private_stimuli(url, template, tmp_path)
    token = start(store, rated=N_CALIBRATION)
    item = store.next_item(token)
    assert item is not None
    path = item.image_path
    if damage == "deleted":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "not an image":
        path.write_text("<html>not a picture</html>")
    elif damage == "a folder":
        path.unlink()
        path.mkdir()
    else:
        path.chmod(0)
        if os.access(path, os.R_OK):  # root reads anything: make it unreadable another way
            path.chmod(0o600)
            path.unlink()
            path.symlink_to(path)  # a symlink loop: open() fails with ELOOP
    before = ratings_table(url)
    at = run_app(url, token=token)
    assert UNSHOWABLE in texts(at) and not at.button
    assert not stages(at)
    assert_nothing_leaks(at)
    at = run_app(url, token=token)  # shown again (a reload): still nothing to click, reported once per session
    assert not at.button and ratings_table(url) == before
    problems = store.status(STUDY).problems
    assert problems["stimulus"].tolist() == [item.stimulus] and problems["reports"].tolist() == [2]
    assert problems["raters"].tolist() == [1] and str(path.name) in problems["problem"].iloc[0]
    at = sign_in(url)  # the admin sees it
    assert "1 stimulus file(s) could not be shown" in texts(at)
    assert at.dataframe[-1].value["stimulus"].tolist() == [item.stimulus]


def test_a_broken_anchor_image_is_reported_not_shown(
    url: str, store: StudyStore, template: Path, tmp_path: Path
) -> None:
    folder = private_stimuli(url, template, tmp_path)
    token = start(store)
    for path in folder.rglob("*.png"):  # every calibration image gone
        path.unlink()
    at = run_app(url, token=token)
    assert UNSHOWABLE in texts(at) and not stages(at)
    assert_nothing_leaks(at)
    assert len(store.status(STUDY).problems) == 2  # the two anchors


def lock_database(url: str) -> Any:
    """Another connection holding SQLite's write lock (as a long writer would); `.close()` releases it."""
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_database_errors_on_rater_pages_show_one_generic_sentence(
    url: str, store: StudyStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("sreval.db.engine.SQLITE_BUSY_TIMEOUT_S", 0.2)  # the app's store waits 0.2 s, not 30
    consenting = start(store, consent=False)
    rating = start(store, rated=N_CALIBRATION)
    at_consent, at_rating = run_app(url, token=consenting), run_app(url, token=rating)
    before = ratings_table(url)
    lock = lock_database(url)
    try:
        at_consent = at_consent.checkbox(key="consent-agree").check().run()
        at_consent = button(at_consent, "Start").click().run()
        at_rating = answer(at_rating, 3)
    finally:
        lock.close()
    for at in (at_consent, at_rating):
        assert GENERIC in texts(at)
        assert_nothing_leaks(at)
    assert ratings_table(url) == before
    assert "database is locked" in caplog.text  # the details are in the server's log

    def unreachable(*_args: Any, **_kwargs: Any) -> None:
        raise SrevalError(f"could not read a schedule in study database {url}: disk I/O error")

    monkeypatch.setattr(StudyStore, "schedule", unreachable)  # the anchors page reads the rater's schedule
    at = run_app(url, token=start(store))
    assert GENERIC in texts(at)
    assert_nothing_leaks(at)


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


@pytest.fixture
def fresh_server() -> None:
    """A server that has seen no sign-in yet (the back-off lives in the server's resources)."""
    st.cache_resource.clear()


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

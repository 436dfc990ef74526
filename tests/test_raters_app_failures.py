"""The rater app when something fails, in AppTest: a stimulus file that cannot be shown gets no buttons,
no rating and a report; database errors on rater pages show one generic sentence and leak nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import raters_app_helpers
from raters_app_helpers import (
    GENERIC,
    N_CALIBRATION,
    STUDY,
    UNSHOWABLE,
    answer,
    assert_nothing_leaks,
    button,
    lock_database,
    private_stimuli,
    ratings_table,
    run_app,
    sign_in,
    stages,
    start,
    texts,
)

from sreval.errors import SrevalError
from sreval.study import StudyStore

template = raters_app_helpers.template


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
        raise SrevalError(f"could not read the calibration anchors in study database {url}: disk I/O error")

    monkeypatch.setattr(StudyStore, "calibration_anchors", unreachable)  # the anchors page reads the anchors
    at = run_app(url, token=start(store))
    assert GENERIC in texts(at)
    assert_nothing_leaks(at)

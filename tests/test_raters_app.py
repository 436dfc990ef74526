"""The rater pages of the app, page by page, in Streamlit's AppTest (no browser): routing by link, consent,
calibration (anchors, feedback), rating (native-size image, buttons, response time), resume, thanks, closed
study, invalid and foreign links, stale answers. The admin page: test_raters_admin.py; stimuli and databases that
fail: test_raters_app_failures.py.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest
import raters_app_helpers
from PIL import Image
from raters_app_helpers import (
    BUTTONS,
    N_CALIBRATION,
    N_TEST_PHASE,
    PER_RATER,
    STUDY,
    answer,
    button,
    ratings_table,
    run_app,
    shown_image,
    stages,
    start,
    texts,
)

from sreval.study import StudyStore
from sreval.vocabulary import SCORE_LABELS

template = raters_app_helpers.template


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

"""Load: 50 raters submit concurrently (threads of one writing process, through `StudyStore`, the app's only
path to the database), each also sending bad requests (scores 0, 6, "abc", a forged and a foreign stimulus,
another rater's token, replays), on SQLite and PostgreSQL; the writing process is SIGKILLed once mid-run and
restarted. Every acknowledged rating must be stored, every scheduled item rated exactly once, no bad request
stored.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import browser_helpers
import numpy as np
import pytest
import raters_app_helpers
from browser_helpers import (
    RATERS,
    ROOT,
)
from db_helpers import copy_database, query_scalar
from raters_app_helpers import (
    PER_RATER,
    STUDY,
    build_pilot,
)

from sreval.imageio import save_png
from sreval.study import (
    DraftImage,
    DraftMethod,
    DraftStimulus,
    StudyDraft,
    StudyStore,
    open_study_store,
)

template = raters_app_helpers.template
browser = browser_helpers.browser
server = browser_helpers.server


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
    return int(query_scalar(url, "SELECT COUNT(*) FROM study_ratings"))


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
    scores = {(r.rater, r.stimulus, int(r.repetition)): int(r.score) for r in ratings.itertuples()}
    number = {rater: i for i, (rater, _) in enumerate(invitations)}
    for (rater, stimulus, _), score in scores.items():  # no bad request got in
        assert score == 1 + zlib.crc32(f"{number[rater]}/{stimulus}".encode()) % 5
    acknowledged = [line.split() for line in log.read_text().splitlines() if line.count(" ") == 4]
    assert len(acknowledged) >= total - at_kill  # the second run alone acknowledged that many
    for index, stimulus, repetition, score, _ in acknowledged:  # every acknowledged rating is stored as sent
        assert scores[invitations[int(index)].rater, stimulus, int(repetition)] == int(score)


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

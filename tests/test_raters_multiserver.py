"""Two replicas of the rater app on one PostgreSQL study, one of them SIGKILLed mid-study.

Servers A and B (`streamlit run raters_app/app.py`, separate processes and ports) share one database. Four
raters use real Chromium pages: r01 on A by its direct link (consent and calibration in the browser), r02
through a reverse proxy that pins it to A and fails over to B, r03 and r04 on B. Four simulated raters answer
through the store's rater calls, as the pages do, in step with the browsers and concurrently with them, and
replay some answers. Before the kill, r03 has its link open on both servers and answers the same item on both
at once (same score, then different scores). Then A's process group is killed while r01 has an item open and
r02's answer has been stored on A but never reached its page. r01 reloads its link on B; r02's page reconnects
through the proxy by itself. Everyone finishes.

The database must then hold, for every rater, exactly its schedule (each (stimulus, repetition) once, in
order, both showings of each retest item), with the very score that rater gave each item: nothing lost,
nothing stored twice, no item answered on a dead server counted, no replay or double answer stored again.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import browser_helpers
import pytest
from browser_helpers import SETTLED, current, open_page, wait_until
from db_helpers import query_rows
from raters_app_helpers import BUTTONS, N_CALIBRATION, PER_RATER, STUDY, build_pilot
from replica_helpers import FailoverProxy, Replica

from sreval.study import Refusal, RequestRefused, StudyStore, invite_link, open_study_store

browser = browser_helpers.browser

#: How long a page may take to show the next item (two servers, Chromium and PostgreSQL share two cores).
SETTLE_MS = 30_000
#: True when the page's answer buttons are disabled: Streamlit lost the connection to its server.
DISCONNECTED = """() => Array.from(document.querySelectorAll("button"))
  .some((b) => /^[1-5] /.test(b.innerText) && b.disabled)"""
CONFLICT_TEXT = "Your answer was not recorded: this item is already rated"
#: Every stored rating: rater, stimulus, repetition, score, time; in the order the database took them.
RATINGS_SQL = """
SELECT r.public_id, s.public_id, g.repetition, g.score, g.created_at FROM study_ratings g
JOIN study_raters r ON r.id = g.rater_id JOIN study_stimuli s ON s.id = g.stimulus_id ORDER BY g.id
"""


def score_for(rater: str, position: int) -> int:
    """The score a rater gives the item at `position` of their schedule: varied, and known to the test."""
    return 1 + zlib.crc32(f"{rater}/{position}".encode()) % 5


@dataclass
class Rater:
    name: str
    token: str
    schedule: list[tuple[str, int]]
    position: int = 0  # the schedule position the rater answers next
    given: dict[int, int] = field(default_factory=dict)  # position -> the score that must be stored
    page: Any = None

    @property
    def finished(self) -> bool:
        return self.position == len(self.schedule)


def settle(rater: Rater, page: Any = None) -> None:
    """Until the page shows the rater's next item, whole, with its image drawn and its buttons enabled."""
    shown = page or rater.page
    try:
        shown.wait_for_function(SETTLED, arg=rater.position, timeout=SETTLE_MS)
    except Exception as exc:  # say which rater and what the page shows instead
        stage = shown.evaluate("() => document.querySelector('.sreval-stage')?.dataset.item ?? null")
        body = " | ".join(shown.inner_text("body").split("\n"))[:600]
        raise AssertionError(f"{rater.name} not at item {rater.position} (stage {stage}): {body}") from exc


def answer(rater: Rater, page: Any = None, score: int | None = None) -> int:
    """Answer the shown item by key (the page must be settled on it); the page's answer goes to its server."""
    chosen = score_for(rater.name, rater.position) if score is None else score
    (page or rater.page).keyboard.press(str(chosen))
    return chosen


def browser_step(rater: Rater) -> None:
    settle(rater)
    rater.given[rater.position] = answer(rater)
    rater.position += 1


def simulated_step(store: StudyStore, rater: Rater) -> None:
    """What a rating page does for one answer (next item, submit), plus a replay of the previous answer now and
    then: the same score (a double click) must be answered as already recorded, another one refused."""
    if rater.position == 0:
        store.give_consent(rater.token)
    item = store.next_item(rater.token)
    assert item is not None and item.position == rater.position, (rater.name, item)
    score = score_for(rater.name, item.position)
    assert store.submit(rater.token, item.stimulus, item.repetition, score, 800).status == "recorded"
    rater.given[item.position] = score
    if item.position % 3 == 1:
        assert store.submit(rater.token, item.stimulus, item.repetition, score, 800).status == "already_recorded"
        with pytest.raises(RequestRefused) as refused:
            store.submit(rater.token, item.stimulus, item.repetition, 1 + score % 5, 800)
        assert refused.value.reason == Refusal.CONFLICT
    rater.position += 1


@dataclass(frozen=True)
class Kill:
    """When A died, the position r01 had open then, and the position r02 had answered on A just before."""

    at: datetime
    open_rater: str
    open_position: int
    answered_rater: str
    answered_position: int


def done(store: StudyStore, rater: Rater) -> int:
    view = store.rater_for_token(rater.token)
    assert view is not None
    return view.done


@pytest.fixture
def replicas(pg_database_url: str, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    a, b = (Replica(pg_database_url, tmp_path / f"streamlit-{n}.log") for n in "ab")
    try:
        for replica in (a, b):
            replica.launch()
        for replica in (a, b):
            replica.wait_ready()
        yield a, b
    finally:
        for replica in (a, b):
            replica.stop()


@pytest.mark.postgres
def test_two_replicas_one_killed_mid_study_lose_and_duplicate_nothing(
    browser: Any, replicas: tuple[Replica, Replica], pg_database_url: str, tmp_path: Path, data_root: Path
) -> None:
    url = pg_database_url
    a, b = replicas
    proxy = FailoverProxy([a.port, b.port])
    store = open_study_store(url)
    pool = ThreadPoolExecutor(4)
    try:
        build_pilot(store, tmp_path, data_root)
        invited = store.invite(STUDY, 4) + store.invite(STUDY, 4, simulated=True)
        raters = [
            Rater(name, token, list(store.schedule(STUDY, name)[["stimulus", "repetition"]].itertuples(index=False)))
            for name, token in invited
        ]
        r01, r02, r03, r04 = raters[:4]
        simulated = raters[4:]
        assert all(len(r.schedule) == PER_RATER for r in raters)
        kill = run_study(browser, store, pool, proxy, a, b, r01, r02, r03, r04, simulated)
        check_database(store, url, raters, kill)
    finally:
        pool.shutdown(wait=True)
        store.close()
        proxy.close()
    for replica in (a, b):
        log = replica.log.read_text()
        assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def run_study(
    browser: Any,
    store: StudyStore,
    pool: ThreadPoolExecutor,
    proxy: FailoverProxy,
    a: Replica,
    b: Replica,
    r01: Rater,
    r02: Rater,
    r03: Rater,
    r04: Rater,
    simulated: list[Rater],
) -> Kill:
    def simulated_round() -> list[Future[None]]:
        """One answer of every unfinished simulated rater, in threads, while the browsers answer."""
        return [pool.submit(simulated_step, store, r) for r in simulated if not r.finished]

    def browser_round(*those: Rater) -> None:
        running = simulated_round()
        for rater in those:
            if not rater.finished:
                browser_step(rater)
        for future in running:
            future.result()

    # r02, r03, r04 consented and calibrated earlier (through the store); r01 does it all in the browser on A.
    for rater in (r02, r03, r04):
        store.give_consent(rater.token)
        for _ in range(N_CALIBRATION):
            item = store.next_item(rater.token)
            assert item is not None
            rater.given[rater.position] = score_for(rater.name, rater.position)
            store.submit(rater.token, item.stimulus, item.repetition, rater.given[rater.position], 900)
            rater.position += 1
    r01.page = open_page(browser, invite_link(a.base, r01.token))
    r02.page = open_page(browser, invite_link(proxy.base, r02.token))
    r03.page = open_page(browser, invite_link(b.base, r03.token))
    r04.page = open_page(browser, invite_link(b.base, r04.token))

    running = simulated_round()
    r01.page.get_by_text("I have read the above and agree to take part.").click()
    r01.page.get_by_role("button", name="Start", exact=True).click()
    r01.page.get_by_role("button", name="Start calibration").click()
    for i in range(N_CALIBRATION):
        browser_step(r01)
        last = i == N_CALIBRATION - 1
        current(r01.page).get_by_text("You answered").wait_for(timeout=SETTLE_MS)  # this answer's feedback
        current(r01.page).get_by_role("button", name="Begin the study" if last else "Next image").click()
    for future in running:
        future.result()
    for _ in range(2):
        browser_round(r01, r02, r03, r04)

    # r03 opens its link on A too and answers the same item on both servers at once: with the same score
    # (both pages move on, one rating), then with different scores (one is stored, the other page says so).
    other = open_page(browser, invite_link(a.base, r03.token))
    for scores in ((score_for(r03.name, r03.position),) * 2, (2, 4)):
        settle(r03)
        settle(r03, other)
        before = done(store, r03)
        answer(r03, other, scores[0])
        answer(r03, r03.page, scores[1])
        assert wait_until(lambda before=before: done(store, r03) > before, 10)
        stored = store.export(STUDY, include_simulated=True).query(f"rater == '{r03.name}'")["score"].iloc[-1]
        assert stored in scores
        r03.given[r03.position] = int(stored)
        r03.position += 1
        settle(r03)
        settle(r03, other)
        refused = [p for p in (other, r03.page) if p.get_by_text(CONFLICT_TEXT).count() > 0]
        assert len(refused) == (scores[0] != scores[1]), scores
        if refused:
            assert refused[0] is (other if scores[0] != stored else r03.page)
    other.close()
    browser_round(r01, r02, r04)

    # A dies: r01 has its item open, unanswered; r02's answer reached A and was stored, but A's reply is
    # withheld, so r02's page never learns it.
    settle(r01)
    settle(r02)
    running = simulated_round()
    proxy.withhold(a.port)
    stored_before = done(store, r02)
    r02.given[r02.position] = answer(r02)
    assert wait_until(lambda: done(store, r02) > stored_before, 10), "r02's answer did not reach server A"
    r02.position += 1
    assert all(0 < done(store, r) < PER_RATER for r in (r01, r02, r03, r04)), "the kill must come mid-study"
    open_at_kill = r01.position
    killed_at = datetime.now(UTC)
    a.kill()
    for future in running:
        future.result()

    # r01's page is cut off: once it shows that (its buttons disabled), an answer given now is not stored, and
    # the page says so.
    r01.page.wait_for_function(DISCONNECTED, timeout=SETTLE_MS)
    r01.page.keyboard.press(str(score_for(r01.name, r01.position)))
    banner = r01.page.locator("#sreval-not-saved")
    assert wait_until(banner.is_visible, 10) and "interrupted" in banner.inner_text()
    assert done(store, r01) == r01.position
    # r01 opens the same link on B and is at the item it had open.
    r01.page.goto(invite_link(b.base, r01.token))
    settle(r01)
    # r02's page reconnects through the proxy, to B. Streamlit draws nothing new until the rater acts, so the page
    # may still show the item answered on A: its rater then clicks an answer to it again, with another score,
    # and B must store nothing (the first answer stands) and show the next item.
    r02.page.wait_for_function(
        f"() => [{r02.position - 1}, {r02.position}].some((p) => ({SETTLED})(p))", timeout=SETTLE_MS
    )
    assert proxy.routed[0] == a.port and proxy.routed[-1] == b.port
    if r02.page.evaluate(SETTLED, r02.position - 1):
        again = 1 + r02.given[r02.position - 1] % 5
        r02.page.get_by_role("button", name=BUTTONS[again - 1], exact=True).click()
    settle(r02)
    assert done(store, r02) == r02.position

    while not all(r.finished for r in (r01, r02, r03, r04, *simulated)):
        browser_round(r01, r02, r03, r04)
    for rater in (r01, r02, r03, r04):
        rater.page.get_by_text("Thank you!").wait_for(timeout=SETTLE_MS)
        rater.page.close()
    return Kill(killed_at, r01.name, open_at_kill, r02.name, stored_before)


def check_database(store: StudyStore, url: str, raters: list[Rater], kill: Kill) -> None:
    (rows,) = query_rows(url, RATINGS_SQL)
    assert len(rows) == len(raters) * PER_RATER, "ratings lost or stored twice"
    for rater in raters:
        mine = [row for row in rows if row[0] == rater.name]
        # Exactly the schedule, each (stimulus, repetition) once, in the order it was shown.
        assert [(s, int(rep)) for _, s, rep, _, _ in mine] == [(s, int(rep)) for s, rep in rater.schedule], rater.name
        assert [int(row[3]) for row in mine] == [rater.given[p] for p in range(PER_RATER)], rater.name
        retest = {s for s, rep in rater.schedule if rep == 2}
        assert retest and all(sum(1 for row in mine if row[1] == s) == 2 for s in retest), rater.name
    status = store.status(STUDY, include_simulated=True).raters
    assert len(status) == len(raters) and (status["done"] == PER_RATER).all() and status["finished_at"].notna().all()
    # The answer r02 gave on A was stored before the kill (and, above, once); r01's open item only after it, on B.
    answered = [row[4] for row in rows if row[0] == kill.answered_rater]
    assert answered[kill.answered_position] < kill.at < answered[kill.answered_position + 1]
    opened = [row[4] for row in rows if row[0] == kill.open_rater]
    assert opened[kill.open_position - 1] < kill.at < opened[kill.open_position]

"""Progress off a terminal: one plain line per interval with count, rate and time left; nothing when disabled."""

from __future__ import annotations

import io

import pytest

from sreval import progress
from sreval.progress import Progress


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(progress.time, "monotonic", fake)
    return fake


def test_a_pipe_gets_a_line_every_interval_with_count_rate_and_eta(clock: _Clock) -> None:
    out = io.StringIO()
    with Progress(100, "benchmark", "img", stream=out, interval=10) as bar:
        for _ in range(30):
            clock.now += 1
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at 10, 20, 30 s, and the closing count
    assert lines[0] == "benchmark: 10 img of 100 img (10%), 1 img/s, elapsed 0:10, left ~1:30"
    assert lines[-1].startswith("benchmark: 30 img of 100 img (30%)")


def test_short_work_and_disabled_progress_print_nothing(clock: _Clock) -> None:
    out = io.StringIO()
    with Progress(5, "x", stream=out, interval=10) as bar:
        bar.update(5)
    with Progress(5, "x", stream=out, interval=10, enabled=False) as bar:
        clock.now += 100
        bar.update(5)
    assert out.getvalue() == ""


def test_bytes_are_shown_in_binary_units(clock: _Clock) -> None:
    bar = Progress(64 << 20, "RRDB_ESRGAN_x4.pth", "B", stream=io.StringIO(), initial=16 << 20)
    clock.now += 2
    bar.update(16 << 20)
    assert bar.line() == "RRDB_ESRGAN_x4.pth: 32.0 MiB of 64.0 MiB (50%), 8.0 MiB/s, elapsed 0:02, left ~0:04"


def test_an_unknown_total_shows_the_count_and_rate(clock: _Clock) -> None:
    bar = Progress(None, "steps", stream=io.StringIO())
    clock.now += 3
    bar.update(3)
    assert bar.line() == "steps: 3 it, 1 it/s, elapsed 0:03"

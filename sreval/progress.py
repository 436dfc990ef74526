"""Progress of long work, on a terminal and off it.

On a terminal (stderr a TTY) this is a tqdm bar. Under a job runner, nohup, a pipe or CI, a bar is noise and
silence is worse (a ten-minute first run that prints nothing looks hung), so there it prints one plain line every
`interval` seconds with the count, the rate and the time left, and one line when the work ends.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from tqdm import tqdm

#: Seconds between two plain progress lines when stderr is not a terminal.
LINE_INTERVAL_S = 10.0


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def binary_size(value: float, below_a_kib: str = "B") -> str:
    """Bytes in KiB, MiB or GiB with one decimal; under 1 KiB the plain count followed by `below_a_kib`."""
    for scale, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if value >= scale:
            return f"{value / scale:.1f} {name}"
    return f"{value:.0f} {below_a_kib}"


class _Bar(tqdm):  # type: ignore[misc]  # tqdm ships no type information: mypy sees Any
    """A tqdm bar without tqdm's monitor thread: a benchmark forks its worker processes only when no other thread
    runs (`sreval.benchmark.pool`), and the monitor only corrects bars that update far less often than these."""

    monitor_interval = 0


def _amount(value: float, unit: str) -> str:
    return binary_size(value) if unit == "B" else f"{value:,.0f} {unit}"


class Progress:
    """`with Progress(total, "benchmark", "img") as bar: bar.update(1)`; `enabled=False` prints nothing."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = LINE_INTERVAL_S,
        initial: int = 0,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.done = initial
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._interval = interval
        self._start = time.monotonic()
        self._initial = initial
        self._last_line = self._start
        self._bar: tqdm[None] | None = None
        if enabled and self._stream.isatty():
            scaled = unit == "B"
            self._bar = _Bar(
                total=total,
                desc=desc,
                unit=unit,
                unit_scale=scaled,
                unit_divisor=1024 if scaled else 1000,
                initial=initial,
                leave=False,
                file=self._stream,
            )

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._enabled and time.monotonic() - self._last_line >= self._interval:
            self._last_line = time.monotonic()
            self._print_line()

    def line(self) -> str:
        """The plain progress line: `desc: done/total unit (pct), rate, elapsed, time left`."""
        elapsed = time.monotonic() - self._start
        rate = (self.done - self._initial) / elapsed if elapsed > 0 else 0.0
        count = _amount(self.done, self.unit)
        if self.total:
            count = f"{count} of {_amount(self.total, self.unit)} ({100 * self.done / self.total:.0f}%)"
        parts = [f"{self.desc}: {count}", f"{_amount(rate, self.unit)}/s", f"elapsed {_duration(elapsed)}"]
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"left ~{_duration((self.total - self.done) / rate)}")
        return ", ".join(parts)

    def _print_line(self) -> None:
        print(self.line(), file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._enabled and time.monotonic() - self._start >= self._interval:
            self._print_line()  # the closing count, only when the work was long enough to have reported
        self._enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

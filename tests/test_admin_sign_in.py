"""Admin sign-in resists guessing: a per-client and a server-wide back-off that refuses attempts before any
password is hashed (so guessing cannot burn the CPU the raters need), one password check at a time, every
failure logged with its time and client; and `sreval study hash-password` refuses weak settings.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from pathlib import Path

import pytest

from sreval.cli import main
from sreval.errors import SrevalError
from sreval.study.security import (
    MIN_PASSWORD_LENGTH,
    PBKDF2_ITERATIONS,
    SignInGuard,
    check_admin_password,
    hash_password,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Verifier:
    """Stands for the password check; counts how often it ran and how many ran at once."""

    def __init__(self, answer: bool = False, seconds: float = 0.0) -> None:
        self.answer, self.seconds = answer, seconds
        self.calls = self.running = self.most_at_once = 0
        self.lock = threading.Lock()

    def __call__(self) -> bool:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        return self.answer


def test_wrong_passwords_in_a_row_are_slowed_down_without_hashing() -> None:
    clock = Clock()
    guard = SignInGuard(clock=clock)
    wrong = Verifier(False)
    results = [guard.attempt("10.0.0.7", wrong) for _ in range(24)]
    assert [r.ok for r in results] == [False] * 24
    assert wrong.calls == guard.free_failures == 3  # the first few are checked; the rest wait, unchecked
    assert all(r.wait_s == 0 for r in results[:3]) and all(r.wait_s > 0 for r in results[3:])
    delays = []
    for _ in range(6):  # each wait, once over, allows one more check; the waits double
        clock.now += results[-1].wait_s
        results.append(guard.attempt("10.0.0.7", wrong))
        assert not results[-1].ok and results[-1].wait_s == 0 and wrong.calls == 3 + len(delays) + 1
        results.append(guard.attempt("10.0.0.7", wrong))
        delays.append(results[-1].wait_s)
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    other = guard.attempt("10.0.0.8", Verifier(True))  # another client is not held up by this one
    assert other.ok and other.wait_s == 0


def test_a_success_resets_the_client_and_the_right_password_must_wait_too() -> None:
    clock = Clock()
    guard = SignInGuard(clock=clock)
    for _ in range(4):
        guard.attempt("a", Verifier(False))
    right = Verifier(True)
    refused = guard.attempt("a", right)
    assert not refused.ok and refused.wait_s > 0 and right.calls == 0  # no check while locked
    clock.now += refused.wait_s
    assert guard.attempt("a", right).ok
    for _ in range(guard.free_failures):  # a clean slate again
        assert guard.attempt("a", Verifier(False)).wait_s == 0


def test_many_clients_are_limited_together() -> None:
    """Guessers spread over many addresses: past the server-wide budget of failures per minute every sign-in
    waits, without a password check, until the minute is over."""
    clock = Clock()
    guard = SignInGuard(clock=clock)
    wrong = Verifier(False)
    for i in range(guard.failures_per_minute):
        assert guard.attempt(f"10.0.1.{i}", wrong).wait_s == 0
        clock.now += 1
    late = guard.attempt("10.0.2.1", wrong)
    assert not late.ok and late.wait_s > 0 and wrong.calls == guard.failures_per_minute
    clock.now += late.wait_s
    assert guard.attempt("10.0.2.1", Verifier(True)).ok


def test_parallel_guessers_get_few_checks_one_at_a_time() -> None:
    """4 guessers from 4 addresses, 12 passwords each, at the same time, against a real PBKDF2 hash: at most
    the free failures of each are checked, one at a time; every other try is refused at once."""
    hashed = hash_password("the real admin password", iterations=20_000, salt="parallelsalt")
    guard = SignInGuard()
    checked = Verifier()

    def check(password: str) -> bool:
        checked()
        return check_admin_password(password, hashed)

    outcomes: list[bool] = []
    started = time.perf_counter()

    def guess(client: int) -> None:
        for n in range(12):
            outcomes.append(guard.attempt(f"192.0.2.{client}", lambda n=n: check(f"guess {client}/{n}")).ok)

    threads = [threading.Thread(target=guess, args=(c,)) for c in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 48 and not any(outcomes)
    assert checked.calls <= 4 * guard.free_failures and checked.most_at_once == 1
    assert time.perf_counter() - started < 10


def test_failures_are_logged_with_time_and_client(caplog: pytest.LogCaptureFixture) -> None:
    guard = SignInGuard()
    with caplog.at_level(logging.WARNING, logger="sreval"):
        for _ in range(4):
            guard.attempt("203.0.113.5", Verifier(False))
    failed = [r for r in caplog.records if "failed admin sign-in" in r.getMessage()]
    refused = [r for r in caplog.records if "refused admin sign-in" in r.getMessage()]
    assert len(failed) == 3 and len(refused) == 1
    assert all("203.0.113.5" in r.getMessage() and r.created > 0 for r in failed + refused)


def test_a_broken_hash_is_not_counted_as_a_guess() -> None:
    guard = SignInGuard(clock=Clock())

    def broken() -> bool:
        return check_admin_password("x", "plain text")

    for _ in range(5):
        with pytest.raises(SrevalError, match="hash-password"):
            guard.attempt("a", broken)
    assert guard.attempt("a", Verifier(True)).ok


@pytest.mark.parametrize(
    ("arguments", "password", "refusal"),
    [
        (["--iterations", "1000"], "a long enough passphrase", "iterations"),
        ([], "short pass", f"at least {MIN_PASSWORD_LENGTH} characters"),
    ],
)
def test_hash_password_refuses_weak_settings_unless_forced(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], arguments: list[str], password: str,
    refusal: str,
) -> None:  # fmt: skip
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{password}\n"))
    assert main(["study", "hash-password", *arguments]) == 2
    captured = capsys.readouterr()
    assert refusal in captured.err and "--force" in captured.err and not captured.out
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{password}\n"))
    forced = [*arguments, "--force"] if arguments else ["--iterations", "1000", "--force"]
    assert main(["study", "hash-password", *forced]) == 0
    assert check_admin_password(password, capsys.readouterr().out.strip())


def test_hash_password_default_is_the_owasp_figure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery staple\n"))
    out = tmp_path / "out.txt"
    with out.open("w") as handle:
        monkeypatch.setattr(sys, "stdout", handle)
        assert main(["study", "hash-password"]) == 0
    assert out.read_text().startswith(f"pbkdf2_sha256${PBKDF2_ITERATIONS}$") and PBKDF2_ITERATIONS >= 600_000

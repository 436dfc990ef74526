"""Secrets of a study: rater tokens, opaque stimulus ids, invitation links and the admin password hash.

A rater's link carries a random token (256 bits); the database keeps only its SHA-256, so a copy of the
database cannot be used to rate in someone's name and a lost link cannot be recovered, only replaced by a new
invitation. The hash needs no salt or stretching: the token is random, not a password.

The admin password is different: people choose it, so it is stored (in the app's `.streamlit/secrets.toml`,
never in the database) as a salted, stretched PBKDF2-SHA256 hash, `pbkdf2_sha256$ITERATIONS$SALT$HEX`. That
stretching makes each check cost the server about half a second of CPU, so sign-in attempts go through a
`SignInGuard`, which refuses guesses before they are hashed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sreval.errors import SrevalError

#: Random bytes in a rater token (the link's `token` parameter is 43 URL-safe characters).
TOKEN_BYTES = 32
#: Random bytes in a stimulus id or file name (16 URL-safe characters, 96 bits).
PUBLIC_ID_BYTES = 12
#: Longest token accepted for a lookup; anything longer is not one of ours and is refused before hashing.
MAX_TOKEN_LENGTH = 200
#: PBKDF2-SHA256 iterations of new admin password hashes (OWASP's Password Storage Cheat Sheet, since 2023).
PBKDF2_ITERATIONS = 600_000
#: Shortest admin password `sreval study hash-password` accepts without `--force`.
MIN_PASSWORD_LENGTH = 12

log = logging.getLogger(__name__)

_HASH_FORMAT = re.compile(r"pbkdf2_sha256\$(\d{1,9})\$([0-9A-Za-z._-]{8,128})\$([0-9a-f]{64})")


def new_token() -> str:
    """A new rater token: unguessable, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_sha256(token: str) -> str:
    """What the database stores and looks up for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_public_id() -> str:
    """A random id that says nothing about what it names (stimulus ids, stimulus file names)."""
    return secrets.token_urlsafe(PUBLIC_ID_BYTES)


def check_base_url(base_url: str) -> str:
    """`base_url` if it can be the rater app's address (http or https with a host), else `SrevalError`."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SrevalError(f"the base URL must be an http(s) URL such as https://study.example.org/, got {base_url!r}")
    return base_url.strip()


def invite_link(base_url: str, token: str) -> str:
    """`base_url` (the app's address) with `token=TOKEN` added to its query string (replacing any `token`).

    The app reads it with `st.query_params["token"]`.
    """
    parts = urlsplit(check_base_url(base_url))
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), ""))


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: str | None = None) -> str:
    """`pbkdf2_sha256$ITERATIONS$SALT$HEX` for `password`, to put in the app's secrets as the admin password."""
    if not password:
        raise SrevalError("the admin password must not be empty")
    if not 1 <= iterations <= 999_999_999:
        raise SrevalError(f"iterations must be between 1 and 999999999, got {iterations}")
    salt = salt if salt is not None else secrets.token_hex(16)
    if not re.fullmatch(r"[0-9A-Za-z._-]{8,128}", salt):
        raise SrevalError("the salt must be 8 to 128 characters from A-Z, a-z, 0-9, '.', '_' and '-'")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def check_admin_password(password: str, hashed: str) -> bool:
    """True when `password` matches `hashed` (made by `hash_password` / `sreval study hash-password`).

    Compared in constant time. A malformed `hashed` is a configuration error, not a wrong password: it raises
    `SrevalError` so the app can say that its secrets are broken instead of rejecting every password.
    """
    match = _HASH_FORMAT.fullmatch(hashed.strip()) if isinstance(hashed, str) else None
    if match is None:
        raise SrevalError(
            "the admin password hash is not of the form pbkdf2_sha256$ITERATIONS$SALT$HEX; "
            "make one with `sreval study hash-password`"
        )
    if not isinstance(password, str) or not password:
        return False
    iterations, salt, expected = int(match[1]), match[2], match[3]
    if iterations < 1:
        raise SrevalError("the admin password hash has 0 iterations; make a new one with `sreval study hash-password`")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()
    return hmac.compare_digest(digest, expected)


def check_password_strength(password: str, iterations: int) -> None:
    """`SrevalError` unless `password` and `iterations` make a hash worth guarding: at least
    `MIN_PASSWORD_LENGTH` characters and `PBKDF2_ITERATIONS` iterations (`sreval study hash-password --force`
    skips this check)."""
    if iterations < PBKDF2_ITERATIONS:
        raise SrevalError(
            f"{iterations} PBKDF2 iterations are too few: use at least {PBKDF2_ITERATIONS} (the current OWASP "
            "figure for PBKDF2-SHA256), or --force for a test setup"
        )
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SrevalError(
            f"the admin password must be at least {MIN_PASSWORD_LENGTH} characters long (a passphrase of a few "
            f"words is best), got {len(password)}; or --force for a test setup"
        )


@dataclass(frozen=True)
class SignInResult:
    """`ok`: the password was checked and is right. Otherwise `wait_s` > 0 says the attempt was refused
    unchecked and how many seconds to wait; 0 means it was checked and wrong."""

    ok: bool
    wait_s: float = 0.0


class SignInGuard:
    """Throttles admin sign-in on one server: per client, after `free_failures` wrong passwords in a row each
    further attempt must wait `base_delay_s`, doubling with every failure up to `max_delay_s`; across all
    clients, after `failures_per_minute` failures in a minute every attempt waits until that minute is over
    (guessers spread over many addresses, or one address that cannot be told apart, such as a proxy's).
    An attempt that must wait is refused before the password is hashed, one client has one attempt in flight
    at a time, and passwords are checked one at a time: guessing cannot take more than one core away from the
    raters. A success clears the client's failures. Every failure and refusal is logged with the client.
    Thread-safe; the state lives in memory (per server process, reset by a restart).
    """

    def __init__(
        self,
        *,
        free_failures: int = 3,
        base_delay_s: float = 1.0,
        max_delay_s: float = 900.0,
        failures_per_minute: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.failures_per_minute = failures_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._checking = threading.Lock()
        self._failures: dict[str, int] = {}  # client → wrong passwords in a row
        self._not_before: dict[str, float] = {}  # client → when its next attempt may be checked
        self._in_flight: set[str] = set()
        self._recent: deque[float] = deque()  # times of failures of the last minute, all clients

    def attempt(self, client: str, check: Callable[[], bool]) -> SignInResult:
        """Run `check` (the password check) for `client` unless it must wait. A `SrevalError` from `check` (a
        broken hash in the configuration) is not a guess: it counts as nothing and is raised."""
        with self._lock:
            now = self._clock()
            wait = self._wait(client, now)
            if wait > 0 or client in self._in_flight:
                wait = max(wait, 1.0)
                log.warning("refused admin sign-in from %s: it must wait %.0f s", client, wait)
                return SignInResult(False, wait)
            self._in_flight.add(client)
        ok: bool | None = None
        try:
            with self._checking:
                ok = bool(check())
        finally:
            with self._lock:
                self._in_flight.discard(client)
                if ok:
                    self._failures.pop(client, None)
                    self._not_before.pop(client, None)
                elif ok is not None:
                    self._fail(client, self._clock())
        return SignInResult(bool(ok))

    def _wait(self, client: str, now: float) -> float:
        while self._recent and self._recent[0] <= now - 60:
            self._recent.popleft()
        everyone = self._recent[0] + 60 - now if len(self._recent) >= self.failures_per_minute else 0.0
        return max(self._not_before.get(client, now) - now, everyone, 0.0)

    def _fail(self, client: str, now: float) -> None:
        failures = self._failures.get(client, 0) + 1
        self._failures[client] = failures
        self._recent.append(now)
        if failures >= self.free_failures:
            delay = min(self.base_delay_s * 2.0 ** (failures - self.free_failures), self.max_delay_s)
            self._not_before[client] = now + delay
        log.warning("failed admin sign-in from %s (%d wrong passwords in a row)", client, failures)

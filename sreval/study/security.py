"""Secrets of a study: rater tokens, opaque stimulus ids, invitation links and the admin password hash.

A rater's link carries a random token (256 bits); the database keeps only its SHA-256, so a copy of the
database cannot be used to rate in someone's name and a lost link cannot be recovered, only replaced by a new
invitation. The hash needs no salt or stretching: the token is random, not a password.

The admin password is different: people choose it, so it is stored (in the app's `.streamlit/secrets.toml`,
never in the database) as a salted, stretched PBKDF2-SHA256 hash, `pbkdf2_sha256$ITERATIONS$SALT$HEX`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sreval.errors import SrevalError

#: Random bytes in a rater token (the link's `token` parameter is 43 URL-safe characters).
TOKEN_BYTES = 32
#: Random bytes in a stimulus id or file name (16 URL-safe characters, 96 bits).
PUBLIC_ID_BYTES = 12
#: Longest token accepted for a lookup; anything longer is not one of ours and is refused before hashing.
MAX_TOKEN_LENGTH = 200
#: PBKDF2-SHA256 iterations of new admin password hashes (OWASP's 2023 recommendation).
PBKDF2_ITERATIONS = 600_000

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

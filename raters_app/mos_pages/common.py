"""What every page of the rater app shares: configuration, the open study store (the admin page sees all of it,
rater pages only its rater side), the routed state, messages kept for the next run, and the answer labels.
The stimulus display lives in `stimulus`, the answering widget in `answering`, the page script in
`page_script`.

Configuration comes from Streamlit's secrets (`.streamlit/secrets.toml`) first, then the environment, so that
a deployment keeps its database password and admin hash out of the command line, and tests can use either:

* `db_url`: the study database (else SREVAL_DB, else sreval's default SQLite file);
* `admin_password_hash`: the admin password, as made by `sreval study hash-password` (else SREVAL_ADMIN_HASH).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass

import streamlit as st

from sreval import settings
from sreval.study import Item, RaterSide, RaterView, SignInGuard, StudyStore, open_study_store
from sreval.vocabulary import SCORE_LABELS

log = logging.getLogger("sreval.raters_app")

#: Button text per score; the keyboard handler finds the buttons by this text.
SCORE_BUTTONS: dict[int, str] = {score: f"{score} {label.capitalize()}" for score, label in SCORE_LABELS.items()}
#: Page title shown in the browser tab (nothing about the study's content).
APP_TITLE = "Image quality study"
#: Shown instead of anything the server knows about a failure (database errors, paths): it goes to the log.
UNAVAILABLE = (
    "The study cannot be reached just now. Nothing you answered is lost: please try again in a minute "
    "(reload the page)."
)


# --- configuration -------------------------------------------------------------------------------------------


def log_to_stderr() -> None:
    """Send sreval's log (failed sign-ins, unshowable stimuli, database errors: the details raters never see)
    to the server's standard error with the time, unless the deployment configured logging itself."""
    logger = logging.getLogger("sreval")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def secret(name: str) -> str | None:
    """A top-level string from Streamlit's secrets, or None when there is no secrets file or no such key."""
    try:
        value = st.secrets[name]
    except (KeyError, FileNotFoundError):  # StreamlitSecretNotFoundError is a FileNotFoundError
        return None
    return str(value) if value else None


def db_url() -> str:
    """The study database: `db_url` in the secrets, else SREVAL_DB, else sreval's default."""
    return settings.db_url(secret("db_url"))


def admin_hash() -> str | None:
    """The admin password hash (`admin_password_hash` in the secrets, else SREVAL_ADMIN_HASH), None if unset."""
    return secret("admin_password_hash") or os.environ.get("SREVAL_ADMIN_HASH") or None


@st.cache_resource(show_spinner=False)
def _open(url: str) -> StudyStore:
    """One store (one connection pool) per database for the whole server: it is thread-safe."""
    return open_study_store(url)


@st.cache_resource(show_spinner=False)
def sign_in_guard() -> SignInGuard:
    """The admin sign-in throttle of this server (one for all sessions)."""
    return SignInGuard()


def client() -> str:
    """The address the request came from, for the sign-in throttle and the log ("local" for localhost).
    Behind a reverse proxy every rater may have the proxy's address: the throttle's server-wide limit holds
    then too."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "local"


def admin_store() -> StudyStore:
    """The open study store of the configured database, admin calls included (`SrevalError` if it cannot be
    opened): for the admin page only."""
    return _open(db_url())


def rater_store() -> RaterSide:
    """The rater side of the open study store: all that rater pages may call (they never see admin data)."""
    return _open(db_url())


def token() -> str | None:
    """The rater token of the link (`?token=...`), None when the link has none."""
    value = st.query_params.get("token")
    return value or None


# --- routed state --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """What the router found out about the rater of this run, so that pages need not ask the store again."""

    token: str
    view: RaterView
    item: Item | None  # the due item (None: nothing left, or not asked because not needed)


def set_route(route: Route | None) -> None:
    st.session_state["route"] = route


def route() -> Route:
    """The routed state of this run (set by `app.py` before it runs a rater page)."""
    current = st.session_state.get("route")
    if not isinstance(current, Route):
        raise RuntimeError("a rater page ran without a route; run the app through app.py")
    return current


def flash(message: str) -> None:
    """Keep a message for the next run (shown by `show_flash`): callbacks run before the page is drawn."""
    st.session_state["flash"] = message


def show_flash() -> None:
    """The kept message, marked so that the page script knows the server answered (a refusal, not a loss)."""
    if message := st.session_state.pop("flash", None):
        st.warning(message)
        st.html(f'<span data-sreval-refused="{page_id()}" hidden></span>')


def new_page_id(name: str) -> str:
    """Start a run of page `name`: a new id for what it draws, unique across runs and server restarts, so the
    page script can tell this run's elements from those of the page it replaces."""
    value = f"{name}-{secrets.token_hex(4)}"
    st.session_state["page_id"] = value
    return value


def page_id() -> str:
    return str(st.session_state.get("page_id", "none"))

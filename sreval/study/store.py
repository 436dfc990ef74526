"""The MOS study store: the one interface the CLI, the simulation and the rater app use to read and write
studies, made of its admin side (`admin.StudyAdmin`) and its rater side (`rater.RaterSide`).

Open it with `open_study_store(url)`: the same URLs, settings and schema as the results store; SQLite files are
switched to WAL mode with a busy timeout so that many raters can submit at once. The rater app's rater pages
see it only as a `RaterSide`.
"""

from __future__ import annotations

from sreval.db.engine import open_engine
from sreval.study.admin import StudyAdmin
from sreval.study.rater import RaterSide


class StudyStore(StudyAdmin, RaterSide):
    """An open study database with the admin and the rater calls. Create it with `open_study_store`; `close` it
    (or use `with`) when done. Thread-safe: the simulation and the app call it from many threads at once."""


def open_study_store(url: str | None = None) -> StudyStore:
    """Open (creating or migrating as needed) the database at `url`, default `settings.db_url()` (`--db`, then
    SREVAL_DB): the same database and schema as the results store."""
    engine, masked = open_engine(url, "study", concurrent_writers=True)
    return StudyStore(engine, masked)

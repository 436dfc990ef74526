"""MOS studies (the SRGAN protocol): build a study, invite raters, store their ratings, report and export.

`store.StudyStore` (opened with `open_study_store`) is the interface for the rater app and the CLI: its admin
calls live in `admin`, its rater calls in `rater` (the rater pages of the app use only those), the records they
take and return in `records`, the checks of their arguments in `checks`, their SQL in `queries` and `frames`.
`builder` renders the stimuli of a new study (it needs torch, so it is not imported here: the app does not need
it); `simulate` runs synthetic raters through the same interface; `security` makes tokens, links and the admin
password hash; `schedule` builds each rater's reproducible presentation order.
"""

from sreval.study.checks import check_study_name
from sreval.study.rater import RaterSide
from sreval.study.records import (
    EXPORT_COLUMNS,
    Anchor,
    DraftImage,
    DraftMethod,
    DraftStimulus,
    Invitation,
    Item,
    RaterView,
    Refusal,
    RequestRefused,
    StudyDraft,
    StudyInfo,
    StudyStatus,
    SubmitResult,
)
from sreval.study.security import SignInGuard, check_admin_password, hash_password, invite_link
from sreval.study.store import StudyStore, open_study_store

__all__ = [
    "EXPORT_COLUMNS",
    "Anchor",
    "DraftImage",
    "DraftMethod",
    "DraftStimulus",
    "Invitation",
    "Item",
    "RaterSide",
    "RaterView",
    "Refusal",
    "RequestRefused",
    "SignInGuard",
    "StudyDraft",
    "StudyInfo",
    "StudyStatus",
    "StudyStore",
    "SubmitResult",
    "check_admin_password",
    "check_study_name",
    "hash_password",
    "invite_link",
    "open_study_store",
]

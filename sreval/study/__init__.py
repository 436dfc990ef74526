"""MOS studies (the SRGAN protocol): build a study, invite raters, store their ratings, report and export.

`api.StudyStore` (opened with `open_study_store`) is the interface for the rater app and the CLI; `builder`
renders the stimuli of a new study (it needs torch, so it is not imported here: the app does not need it);
`simulate` runs synthetic raters through the same interface; `security` makes tokens, links and the admin
password hash; `schedule` builds each rater's reproducible presentation order.
"""

from sreval.study.api import (
    EXPORT_COLUMNS,
    GOLD_RULE,
    SCORE_LABELS,
    Invitation,
    Item,
    RaterView,
    Refusal,
    RequestRefused,
    StudyInfo,
    StudyStatus,
    StudyStore,
    SubmitResult,
    open_study_store,
)
from sreval.study.security import SignInGuard, check_admin_password, hash_password, invite_link

__all__ = [
    "EXPORT_COLUMNS",
    "GOLD_RULE",
    "SCORE_LABELS",
    "Invitation",
    "Item",
    "RaterView",
    "Refusal",
    "RequestRefused",
    "SignInGuard",
    "StudyInfo",
    "StudyStatus",
    "StudyStore",
    "SubmitResult",
    "check_admin_password",
    "hash_password",
    "invite_link",
    "open_study_store",
]

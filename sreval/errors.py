"""The one exception type users see: a message that names the bad value and what is allowed."""

import numpy as np


class SrevalError(Exception):
    """An expected failure with a message meant for the user (the CLI prints it without a traceback)."""


def shown(value: object) -> str:
    """`value` as a message should show it: numbers plain, also numpy scalars (whose repr is `np.int64(0)` since
    numpy 2), text in quotes."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)

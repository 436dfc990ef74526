"""The exceptions users see: a message that names the bad value and what is allowed."""

import numpy as np


class SrevalError(Exception):
    """An expected failure with a message meant for the user (the CLI prints it without a traceback)."""


class ParameterError(SrevalError):
    """A bad argument of a library function. The message speaks of the parameter by its Python name
    (`delta must be in (0, 1), got 2`); `parameter` holds that name so that a shell (the CLI) can say which of its
    own options it came from."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def shown(value: object) -> str:
    """`value` as a message should show it: numbers plain, also numpy scalars (whose repr is `np.int64(0)` since
    numpy 2), text in quotes."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)

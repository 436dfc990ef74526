"""The one exception type users see: a message that names the bad value and what is allowed."""


class SrevalError(Exception):
    """An expected failure with a message meant for the user (the CLI prints it without a traceback)."""

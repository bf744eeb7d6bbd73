"""The base of every error a user can fix: its message says what went wrong and what to do."""


class ChurnError(ValueError):
    """An expected error; the CLI prints its message on one line and exits with status 2."""

"""Errors a user can fix, and the root cause of any other error in words a person can act on."""

from __future__ import annotations

import builtins
import re


class ChurnError(ValueError):
    """An expected error; the CLI prints its message on one line and exits with status 2."""


# joblib re-raises a worker's error in the parent with the worker's traceback, as text, for its
# cause; the re-raised error is the one that says what went wrong.
_TRACEBACK_TEXT = "_RemoteTraceback"


def root_cause(error: BaseException) -> str:
    """'Type: message' of the innermost error behind ``error`` (its chain of causes walked)."""
    while True:
        cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if cause is None or type(cause).__name__ == _TRACEBACK_TEXT:
            break
        error = cause
    return f"{type(error).__name__}: {first_line(str(error))}"


def first_line(text: str) -> str:
    """The first non-empty line of an error message (the rest is usually a traceback or a hint),
    without the module-qualified class name and context DuckDB repeats in front of it."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "(no message)")
    return _DUCKDB_PREFIX.sub("", line)


# "_duckdb.TransactionException: TransactionContext Error: " in front of DuckDB's own message
_DUCKDB_PREFIX = re.compile(r"^(_?duckdb\.\w+: )?(TransactionContext Error: )?")


# DuckDB's errors for a warehouse it cannot open or write (held by another process, disk full).
_DUCKDB_ENVIRONMENT_ERRORS = frozenset({"IOException", "ConnectionException"})


# What the operating system says when the machine, not the data, stops a write; DuckDB reports a
# full disk at commit as a TransactionException that only names it in its message.
_ENVIRONMENT_MESSAGES = (
    "No space left on device", "Disk quota exceeded", "Read-only file system", "Could not set lock on file",
    "Too many open files", "Cannot allocate memory",
)


def is_environment_error(class_name: str | None, message: str = "") -> bool:
    """Whether an error, by class name and message (stored errors keep only those), is the
    machine's: an ``OSError`` of any kind (disk full, a lock, a missing folder, a permission),
    DuckDB's I/O error, or any error whose message is the operating system's word for one."""
    if class_name in _DUCKDB_ENVIRONMENT_ERRORS or any(m in message for m in _ENVIRONMENT_MESSAGES):
        return True
    builtin = getattr(builtins, class_name or "", None)
    return isinstance(builtin, type) and issubclass(builtin, OSError)


def caused_by_environment(error: BaseException) -> bool:
    """Whether an error in the chain behind ``error`` comes from the machine, not the data or the
    code. Such a failure is worth retrying once the cause is gone."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) or is_environment_error(type(seen).__name__, str(seen)):
            return True
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return False

"""Loader errors, as subclasses of the project's exception tree.

The CLI prints any of them as one line and exits with its ``exit_code``: 2 when
the command line points at something unusable (a missing file, a checkpoint of
another file), 1 when the load ran into a runtime failure.
"""

from __future__ import annotations

from cachewarm.errors import CachewarmError, PermanentError, RetryableError


class InputError(CachewarmError):
    """The input cannot be opened: missing, a directory, unreadable, or a bad URI."""

    exit_code = 2


class EmptyInputError(PermanentError):
    """The input holds no lines at all, which is almost always a mistake upstream."""


class CheckpointError(CachewarmError):
    """``--resume`` was given a checkpoint that belongs to another file or format."""

    exit_code = 2


class LoadFailed(PermanentError):
    """The load stopped before the end (a writer died, DynamoDB refused us). The checkpoint is kept."""


class StillUnprocessed(RetryableError):
    """DynamoDB kept returning ``UnprocessedItems`` after every bounded retry."""

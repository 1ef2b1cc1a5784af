"""The exception tree. One root; retryable and permanent errors below it.

botocore and redis-py errors are translated into these at the boundary of the
repository and the cache, so callers (tasks, CLI) decide on retry by type alone.
"""

from __future__ import annotations

from cachewarm.masking import mask_url


class CachewarmError(Exception):
    """Root of every error this project raises on purpose."""

    #: Process exit code the CLI uses for this error.
    exit_code = 1

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled (to cross from a loader's writer process) as message and attributes, never by
        # calling a subclass's __init__ again: its arguments differ from ``args`` (TableNotFoundError, ConfigError).
        return _restore, (type(self), self.args), self.__dict__ or None


def _restore(cls: type[CachewarmError], args: tuple[object, ...]) -> CachewarmError:
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class ConfigError(CachewarmError):
    """A setting has a bad value. The message names the variable."""

    exit_code = 2

    def __init__(self, variable: str, value: str, reason: str):
        self.variable = variable
        super().__init__(f"{variable}={mask_url(value)!r} is invalid: {reason}")


class PermanentError(CachewarmError):
    """Retrying will not help: bad input, a missing table, a refused credential."""


class RetryableError(CachewarmError):
    """May go away by itself: transport failures and throttling."""


class TransportError(RetryableError):
    """A service could not be reached or did not answer in time."""


class ThrottledError(RetryableError):
    """DynamoDB refused the request for capacity (after botocore's own retries)."""


class TableNotFoundError(PermanentError):
    """The DynamoDB table does not exist."""

    def __init__(self, table: str):
        self.table = table
        super().__init__(
            f"table {table!r} does not exist; run 'cachewarm table create' (or pass --create-table to load)"
        )


class InvalidNameError(PermanentError):
    """A restaurant name that cannot be a key (empty)."""

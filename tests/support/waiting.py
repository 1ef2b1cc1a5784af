"""The one polling helper for tests that wait on real processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05) -> T:
    """Call ``probe`` every ``interval`` seconds until it returns something truthy, and return that.

    After ``timeout`` seconds without a truthy value: AssertionError naming ``what``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)

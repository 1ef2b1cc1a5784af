"""Polling helpers for tests that wait on real processes."""

from __future__ import annotations

import time


def wait_until(probe, what: str, timeout: float = 60):
    """Poll ``probe`` until it returns something truthy (or fail saying ``what``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout:.0f}s")
        time.sleep(0.5)

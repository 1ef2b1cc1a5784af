"""The one backoff policy: capped exponential backoff with full jitter.

("Exponential Backoff And Jitter", AWS Architecture Blog, 2015.) Every retry
loop of the project waits by this policy: the loader's ``UnprocessedItems``
rounds, the repository's wait for a table to become ACTIVE, and a lease
waiter's polls. Library retries are configured with the same shape where the
library has its own (botocore's ``standard`` mode, redis-py's
``ExponentialWithJitterBackoff``, Celery's ``retry_backoff`` with
``retry_jitter``), so that no loop of ours re-implements them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Waits of ``rand() * min(cap, base * 2**attempt)`` seconds, for at most ``retries`` retries."""

    retries: int = 10  # rounds after the first attempt; then the caller gives up loudly
    base: float = 0.05  # seconds
    cap: float = 5.0  # seconds; the bound on one wait

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return rand() * self.ceiling(attempt)

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt`` (the jitter's upper bound)."""
        # 2.0**attempt overflows a float past 1023; long before that the cap is what counts
        # (a lease waiter, bounded by time rather than retries, can poll thousands of times).
        return min(self.cap, self.base * 2.0 ** min(attempt, 1000))

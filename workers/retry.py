"""Retry policy shared by tasks: only transport and throttling errors, with backoff and jitter."""

from __future__ import annotations

from cachewarm.errors import RetryableError

#: Options for ``@app.task(**RETRY_POLICY)``. Celery computes an exponential
#: countdown with full jitter, capped, and gives up after max_retries.
RETRY_POLICY = {
    "autoretry_for": (RetryableError,),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 8,
}

#: For idempotent tasks: ack only after the work is done, and requeue when the
#: worker process dies, so a killed worker loses nothing.
IDEMPOTENT = {"acks_late": True, "reject_on_worker_lost": True}

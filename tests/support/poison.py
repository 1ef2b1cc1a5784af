"""A poison task for the reliability tests: it kills its own pool process every time it runs.

Loaded only into test workers (``--include=tests.support.poison``). It uses the
project's real policy (``IDEMPOTENT`` and ``RETRY_POLICY`` from workers/retry.py),
so the test sees what a real task whose process dies every time would get: the
worker re-sends it after each loss (``task_retry_on_worker_lost``) until its
retries are used up, then stores FAILURE (WorkerLostError). Each run appends one
line to the file it is given before it dies, so attempts are counted outside
every process under test.
"""

from __future__ import annotations

import json
import os
import signal
import time

from workers.app import app
from workers.retry import IDEMPOTENT, RETRY_POLICY

#: A ``cachewarm.`` name, so the ledger and ``cachewarm stats`` see it like any of our tasks.
NAME = "cachewarm.test_poison"


@app.task(name=NAME, bind=True, **IDEMPOTENT, **RETRY_POLICY)
def poison(self, attempts_file: str) -> None:
    """Note this attempt in ``attempts_file``, then SIGKILL this pool process (like a segfault or the OOM killer)."""
    line = json.dumps({"pid": os.getpid(), "retries": self.request.retries, "t": time.time()}) + "\n"
    fd = os.open(attempts_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)

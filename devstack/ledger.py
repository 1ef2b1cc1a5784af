"""An append-only ledger of task executions, enabled by CACHEWARM_TASK_LEDGER.

When the setting names a file, every worker process appends one JSON line when
one of our tasks starts and one when it ends::

    {"event": "start", "id": "...", "name": "cachewarm.warm_names", "pid": 123, "t": 1.7e9,
     "redelivered": false, "retries": 0}
    {"event": "end", "id": "...", "name": "...", "pid": 123, "t": ..., "state": "SUCCESS"}

"Nothing lost" is then a fact to check (every id sent has a SUCCESS line) and
duplicates a number to count (ids with more than one SUCCESS), even when Redis,
the worker or DynamoDB died in between: the file lives outside all of them.
Each line is one ``write`` on a file opened with ``O_APPEND``, so concurrent
worker processes never interleave inside a line. Off by default; it connects
nothing at import, and a failing write never fails a task.
"""

from __future__ import annotations

import json
import logging
import os
import time

from celery.signals import task_postrun, task_prerun

log = logging.getLogger("cachewarm.worker")


def _path() -> str | None:
    from cachewarm.errors import ConfigError
    from cachewarm.settings import get_settings

    try:
        return get_settings().task_ledger
    except ConfigError:
        return None


def append(path: str, record: dict) -> None:
    """Append one JSON line to ``path`` atomically (one write, O_APPEND)."""
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _record(event: str, task_id: str | None, task: object, **extra: object) -> None:
    name = str(getattr(task, "name", ""))
    if not task_id or not name.startswith("cachewarm."):
        return
    path = _path()
    if not path:
        return
    request = getattr(task, "request", None)
    record = {"event": event, "id": task_id, "name": name, "pid": os.getpid(), "t": time.time(),
              "redelivered": bool((getattr(request, "delivery_info", None) or {}).get("redelivered")),
              "retries": getattr(request, "retries", 0), **extra}
    try:
        append(path, record)
    except OSError as exc:  # bookkeeping must never fail a task
        log.warning("task ledger %s: %s", path, exc)


@task_prerun.connect
def ledger_start(task_id: str | None = None, task: object = None, **_: object) -> None:
    """Note that a task started in this process."""
    _record("start", task_id, task)


@task_postrun.connect
def ledger_end(task_id: str | None = None, task: object = None, state: str | None = None, **_: object) -> None:
    """Note how the task ended (SUCCESS, FAILURE, RETRY)."""
    _record("end", task_id, task, state=state)

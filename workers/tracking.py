"""Record every cachewarm task's last run in Redis, for ``cachewarm stats``.

Connected through Celery's signals, in the worker process that ran the task:
``task_prerun`` notes the start, ``task_postrun`` stores the final state, the
runtime, a small summary of the result (lists become their length) or the
error, in one hash per task name under our prefix
(:class:`cachewarm.stats.TaskRuns`, with a TTL like every key we own).

Recording is best effort: it can never fail or slow down a task beyond one
pipelined round trip, and it connects nothing at import.
"""

from __future__ import annotations

import logging
import socket
import time

from celery.signals import task_postrun, task_prerun

log = logging.getLogger("cachewarm.worker")

#: Start times by task id, per worker process (a process runs one task at a time
#: with prefork, a few with threads).
_started: dict[str, float] = {}


def _ours(task: object) -> bool:
    return str(getattr(task, "name", "")).startswith("cachewarm.")


@task_prerun.connect
def note_start(task_id: str | None = None, task: object = None, **_: object) -> None:
    """Remember when the task started."""
    if task_id and _ours(task):
        _started[task_id] = time.monotonic()


@task_postrun.connect
def record_run(task_id: str | None = None, task: object = None, retval: object = None,
               state: str | None = None, **_: object) -> None:
    """Store the task's last run: state, runtime, result summary or error."""
    started = _started.pop(task_id, None) if task_id else None
    if not task_id or not _ours(task):
        return
    try:
        from cachewarm.clients import cache_redis
        from cachewarm.keys import KeySchema
        from cachewarm.settings import get_settings
        from cachewarm.stats import TaskRuns

        settings = get_settings()
        failed = isinstance(retval, BaseException)
        request = getattr(task, "request", None)
        TaskRuns(cache_redis(settings), KeySchema(prefix=settings.key_prefix)).record(
            task.name,  # type: ignore[attr-defined]
            task_id=task_id,
            state=state or ("FAILURE" if failed else "SUCCESS"),
            runtime=None if started is None else time.monotonic() - started,
            result=None if failed else retval,
            error=retval if failed else None,
            worker=getattr(request, "hostname", None) or socket.gethostname(),
        )
    except Exception as exc:  # bookkeeping must never fail a task
        from cachewarm.masking import mask_text

        log.debug("could not record the run of %s: %s", getattr(task, "name", "?"), mask_text(str(exc)))

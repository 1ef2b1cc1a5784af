"""Record every cachewarm task's last run in Redis, for ``cachewarm stats``.

Connected through Celery's signals, in the worker process that ran the task:
``task_prerun`` notes the start, ``task_postrun`` stores the final state, the
runtime, the attempt (1 + retries), a small summary of the result (lists become
their length) or the error, in one hash per task name under our prefix
(:class:`cachewarm.stats.TaskRuns`, with a TTL like every key we own).

A task whose pool process died (``WorkerLostError``, its retries used up) or was
killed at its hard time limit never reaches ``task_postrun``: the worker's main
process stores its failure and sends ``task_failure`` (celery/worker/request.py
``on_failure``, ``on_timeout``). :func:`record_lost_failure` records those. A
failure raised inside the task also sends ``task_failure``, in the pool process
before its ``task_postrun``; that process has the task in ``_started``, so it is
left to ``task_postrun`` and counted once.

Recording is best effort: it can never fail or slow down a task beyond one
pipelined round trip, and it connects nothing at import.
"""

from __future__ import annotations

import logging
import socket
import time

from celery.signals import task_failure, task_postrun, task_prerun

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


def _attempt(request: object) -> int | None:
    retries = getattr(request, "retries", None)
    return None if retries is None else int(retries) + 1


def _store(task: object, task_id: str, *, state: str, runtime: float | None, result: object,
           error: BaseException | None) -> None:
    """One TaskRuns record; best effort (logged at debug, never raised)."""
    try:
        from cachewarm.clients import cache_redis
        from cachewarm.keys import KeySchema
        from cachewarm.settings import get_settings
        from cachewarm.stats import TaskRuns

        settings = get_settings()
        request = getattr(task, "request", None)
        TaskRuns(cache_redis(settings), KeySchema(prefix=settings.key_prefix)).record(
            task.name,  # type: ignore[attr-defined]
            task_id=task_id,
            state=state,
            runtime=runtime,
            result=result,
            error=error,
            worker=getattr(request, "hostname", None) or socket.gethostname(),
            attempts=_attempt(request),
        )
    except Exception as exc:  # bookkeeping must never fail a task
        from cachewarm.masking import mask_text

        log.debug("could not record the run of %s: %s", getattr(task, "name", "?"), mask_text(str(exc)))


@task_postrun.connect
def record_run(task_id: str | None = None, task: object = None, retval: object = None,
               state: str | None = None, **_: object) -> None:
    """Store the task's last run: state, runtime, attempt, result summary or error."""
    started = _started.pop(task_id, None) if task_id else None
    if not task_id or not _ours(task):
        return
    failed = isinstance(retval, BaseException)
    _store(task, task_id, state=state or ("FAILURE" if failed else "SUCCESS"),
           runtime=None if started is None else time.monotonic() - started,
           result=None if failed else retval, error=retval if failed else None)  # type: ignore[arg-type]
    _flush_counters()


def _flush_counters() -> None:
    """Send the cache counters the task tallied in memory (fills of a warm, say): a pool process may idle long."""
    try:
        from cachewarm import service

        service.flush()
    except Exception as exc:  # bookkeeping must never fail a task
        log.debug("could not flush the cache counters: %s", exc)


@task_failure.connect
def record_lost_failure(sender: object = None, task_id: str | None = None, exception: object = None,
                        **_: object) -> None:
    """Store a failure that ``task_postrun`` will not see (the process that ran the task is gone).

    Runs in the worker's main process, where Celery pushes the failed request on
    the task's request stack, so the attempt count (1 + retries) is the last run's.
    """
    if not task_id or not _ours(sender) or task_id in _started:
        return  # not ours, or raised in this process: task_postrun records it
    _store(sender, task_id, state="FAILURE", runtime=None, result=None,
           error=exception if isinstance(exception, BaseException) else None)

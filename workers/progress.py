"""Follow a task from the shell: its PROGRESS meta as it arrives, then its result.

The one way the shell waits for a task (``load --async --wait``, ``bench --wait``,
``warm --wait``). It is :meth:`AsyncResult.get` with ``on_message``: with the
Redis result backend every ``update_state`` is a SET plus a PUBLISH on the task's
key, so the client is told of each PROGRESS update instead of polling for it.

``get``'s ``on_interval`` is no clock: Celery 5.7 chains it to a vine promise,
which fires its callbacks once, so it runs after the first second only. The hint
for a task nobody consumes therefore comes from a first ``get`` bounded by
``pending_hint_after``, then a second one for the rest of the time.

Celery's vocabulary stays here: a task that does not finish in time raises
:class:`TaskTimeout`, one that fails or is revoked raises :class:`TaskFailed`,
both in the project's exception tree, so the shell catches no Celery exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult

from cachewarm.errors import CachewarmError, TransportError

#: The state the project's tasks report progress in (``update_state(state=PROGRESS, meta={"done", "total"})``).
PROGRESS = "PROGRESS"
#: Seconds a follower may see PENDING before it calls its ``pending_hint``.
PENDING_HINT_SECONDS = 10.0


class TaskTimeout(TransportError):
    """No worker finished the task within the time given."""

    def __init__(self, task_id: str, timeout: float):
        super().__init__(f"no worker finished task {task_id} within {timeout:.0f}s; "
                         "is 'celery -A workers worker' running?")
        self.task_id = task_id
        self.timeout = timeout


class TaskFailed(CachewarmError):
    """The task ended in FAILURE or REVOKED; ``error`` is the exception it ended with."""

    def __init__(self, task_id: str, state: str, error: BaseException | Any):
        super().__init__(f"task {task_id} ended {state}: {type(error).__name__}: {error}")
        self.task_id = task_id
        self.state = state
        self.error = error


def follow(
    result: AsyncResult,
    on_progress: Callable[[dict[str, Any]], None],
    *,
    timeout: float | None = None,
    pending_hint: Callable[[], None] | None = None,
    pending_hint_after: float = PENDING_HINT_SECONDS,
) -> Any:
    """Wait for ``result``; call ``on_progress(meta)`` for each PROGRESS update; return the task's value.

    ``meta`` is the dict the task gave ``update_state`` (``{"done", "total"}`` for
    the project's tasks). ``timeout`` is the whole wait in seconds (None: no limit).
    ``pending_hint`` is called once if the task is still PENDING (no worker took
    it) after ``pending_hint_after`` seconds. A task replaced by a canvas
    (``Task.replace``) is followed on the same id until the canvas is done.
    Raises :class:`TaskTimeout` or :class:`TaskFailed`.
    """
    def on_message(meta: dict[str, Any]) -> None:
        if meta.get("status") == PROGRESS and isinstance(meta.get("result"), dict):
            on_progress(meta["result"])

    started = time.monotonic()
    # get() reads the current state before it subscribes, without telling
    # on_message: a task already in PROGRESS is shown from here.
    state, info = result.state, result.info
    if state == PROGRESS and isinstance(info, dict):
        on_progress(info)
    try:
        if pending_hint is not None and state == states.PENDING:
            first = pending_hint_after if timeout is None else min(pending_hint_after, timeout)
            try:
                return _value(result, result.get(timeout=first, propagate=False, on_message=on_message))
            except CeleryTimeoutError:
                if result.state == states.PENDING:
                    pending_hint()
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        return _value(result, result.get(timeout=left, propagate=False, on_message=on_message))
    except CeleryTimeoutError:
        raise TaskTimeout(result.id, timeout or 0.0) from None


def _value(result: AsyncResult, value: Any) -> Any:
    if result.state != states.SUCCESS:
        raise TaskFailed(result.id, result.state, value)
    return value

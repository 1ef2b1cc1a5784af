"""Retry policy shared by tasks: transport and throttling errors with backoff, and bounded worker-lost retries.

Two budgets share one counter (``request.retries``):

* a transport or throttling error (:class:`~cachewarm.errors.RetryableError`) is
  retried by Celery's autoretry, with an exponential countdown, full jitter and a
  cap, up to :data:`TRANSPORT_RETRIES` times. Autoretry hands ``retry_kwargs`` to
  ``Task.retry``, whose ``max_retries`` argument overrides the task's for that call
  (celery/app/autoretry.py, celery/app/task.py ``retry``);
* a pool process that dies under a task (OOM killer, a segfault, a task that kills
  itself: ``WorkerLostError``) is retried by the worker's main process
  (``task_retry_on_worker_lost``, celery/worker/request.py ``_retry_worker_lost``)
  after ``default_retry_delay`` seconds, while ``request.retries`` is below the
  task's own ``max_retries`` (:data:`WORKER_LOST_RETRIES`); after that the task is
  acknowledged and stored as FAILURE. A poison task therefore runs at most
  ``WORKER_LOST_RETRIES + 1`` times instead of forever.

Because the counter is shared, a task that already used WORKER_LOST_RETRIES
transport retries fails at its next lost process; that is the price of one
counter, and such a task is in trouble anyway.
"""

from __future__ import annotations

from cachewarm.errors import RetryableError

#: Transport and throttling errors: retries before the error is final.
TRANSPORT_RETRIES = 8
#: Cap of the exponential backoff between transport retries, seconds. It is part
#: of the broker's visibility arithmetic (workers/config.py): a retried task
#: waits at most this long, unacknowledged, before it runs again.
RETRY_BACKOFF_MAX = 60
#: A lost pool process: retries before the task fails (at most 4 runs).
WORKER_LOST_RETRIES = 3
#: Seconds before a task whose pool process died runs again. Celery's default
#: (``default_retry_delay``, 180 s) would hold it back for minutes.
WORKER_LOST_RETRY_DELAY = 2

#: Options for ``@app.task(**RETRY_POLICY)``. Celery computes an exponential
#: countdown with full jitter, capped, and gives up after TRANSPORT_RETRIES.
RETRY_POLICY = {
    "autoretry_for": (RetryableError,),
    "retry_backoff": 2,
    "retry_backoff_max": RETRY_BACKOFF_MAX,
    "retry_jitter": True,
    "retry_kwargs": {"max_retries": TRANSPORT_RETRIES},
    # Read by the worker-lost retry only: autoretry passes its own max_retries.
    "max_retries": WORKER_LOST_RETRIES,
    "default_retry_delay": WORKER_LOST_RETRY_DELAY,
}

#: For idempotent tasks: ack only after the work is done, and requeue when the
#: worker process dies, so a killed worker loses nothing. (With
#: ``task_retry_on_worker_lost`` the worker re-sends the task instead of
#: requeueing it, counted against max_retries; the requeue remains the fallback
#: when that send fails.)
IDEMPOTENT = {"acks_late": True, "reject_on_worker_lost": True}

#: The longest countdown any task can get: a transport retry's backoff cap or the worker-lost delay.
LONGEST_COUNTDOWN = max(RETRY_BACKOFF_MAX, WORKER_LOST_RETRY_DELAY)

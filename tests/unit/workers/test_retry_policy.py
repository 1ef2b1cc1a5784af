"""workers/retry.py: transport errors and lost pool processes have separate retry budgets on one counter.

Checked against Celery's own code paths, not a re-implementation: autoretry
(celery/app/autoretry.py) run eagerly for transport errors, and the worker's
``Request.on_failure`` (celery/worker/request.py) for a WorkerLostError.
"""

from __future__ import annotations

from unittest import mock

import pytest
from billiard.einfo import ExceptionInfo
from celery.contrib.testing.app import TestApp
from celery.contrib.testing.mocks import TaskMessage
from celery.exceptions import WorkerLostError
from celery.worker.request import Request

from cachewarm.errors import TransportError
from workers.retry import IDEMPOTENT, RETRY_POLICY, TRANSPORT_RETRIES, WORKER_LOST_RETRIES


@pytest.fixture
def app():
    app = TestApp(config={"task_retry_on_worker_lost": True, "result_backend": "cache+memory://",
                          "broker_url": "memory://"})
    yield app
    app.close()


def test_transport_errors_get_their_own_larger_budget(app):
    runs = []

    @app.task(name="cachewarm.test_flaky", bind=True, **IDEMPOTENT, **RETRY_POLICY)
    def flaky(self):
        runs.append(self.request.retries)
        raise TransportError("redis went away")

    assert flaky.max_retries == WORKER_LOST_RETRIES == 3  # the task's own limit is the worker-lost one
    with mock.patch("celery.app.autoretry.get_exponential_backoff_interval", return_value=0):
        result = flaky.apply()
    # retry_kwargs' max_retries overrides the task's for each autoretry: 1 run + 8 retries.
    assert runs == list(range(TRANSPORT_RETRIES + 1)) and TRANSPORT_RETRIES == 8
    assert isinstance(result.result, TransportError)


def _lost(app, task, retries: int):
    """Run the worker's failure handling for ``task`` whose pool process died on attempt ``retries + 1``."""
    request = Request(TaskMessage(task.name, retries=retries), app=app)
    try:
        raise WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL).")
    except WorkerLostError:
        einfo = ExceptionInfo(internal=True)
    with mock.patch.object(Request, "_retry_worker_lost", return_value=True) as retry, \
            mock.patch.object(request, "acknowledge") as ack, mock.patch.object(request, "reject") as reject:
        request.on_failure(einfo)
    return request, retry.called, ack.called, reject.called


def test_a_lost_pool_process_is_retried_three_times_then_the_task_fails(app):
    @app.task(name="cachewarm.test_poison", **IDEMPOTENT, **RETRY_POLICY)
    def poison():
        raise AssertionError("never run here")

    for retries in range(WORKER_LOST_RETRIES):
        _, retried, _, _ = _lost(app, poison, retries)
        assert retried, f"attempt {retries + 1} should be retried"
    request, retried, acked, rejected = _lost(app, poison, WORKER_LOST_RETRIES)
    # The 4th loss: no retry, no requeue (reject_on_worker_lost stops too): acknowledged and FAILURE.
    assert (retried, acked, rejected) == (False, True, False)
    stored = app.AsyncResult(request.id)
    assert stored.state == "FAILURE" and isinstance(stored.result, WorkerLostError)


def test_transport_retries_count_against_the_worker_lost_budget(app):
    # One counter: a task that already used 3 transport retries fails at its next lost process.
    @app.task(name="cachewarm.test_busy", **IDEMPOTENT, **RETRY_POLICY)
    def busy():
        raise AssertionError("never run here")

    _, retried, acked, _ = _lost(app, busy, 3)
    assert not retried and acked

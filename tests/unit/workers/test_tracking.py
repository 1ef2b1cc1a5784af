"""workers/tracking.py: task runs for `cachewarm stats`, including failures task_postrun never sees."""

from __future__ import annotations

from types import SimpleNamespace

import fakeredis
import pytest
from celery.exceptions import WorkerLostError

from cachewarm.keys import KeySchema
from cachewarm.settings import get_settings
from cachewarm.stats import TaskRuns
from workers import tracking


@pytest.fixture
def runs(monkeypatch):
    client = fakeredis.FakeRedis()
    monkeypatch.setattr("cachewarm.clients.cache_redis", lambda settings: client)
    return TaskRuns(client, KeySchema(prefix=get_settings().key_prefix))


def _task(retries: int = 0):
    return SimpleNamespace(name="cachewarm.warm_names", request=SimpleNamespace(retries=retries, hostname="w@h"))


def test_a_lost_process_failure_is_recorded_with_its_attempts(runs):
    # In the worker's main process: no task_prerun ran here, and task_postrun never will.
    lost = WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL) Job: 3.")
    tracking.record_lost_failure(sender=_task(retries=3), task_id="poison", exception=lost)
    [run] = runs.last_runs()
    assert (run["state"], run["task_id"], run["attempts"], run["failures"], run["runs"], run["worker"]) \
        == ("FAILURE", "poison", 4, 1, 1, "w@h")
    assert run["error"].startswith("WorkerLostError: Worker exited prematurely")


def test_a_failure_raised_in_the_task_is_counted_once(runs):
    # In the pool process: task_failure comes first, then task_postrun, for the same run.
    task = _task(retries=1)
    tracking.note_start(task_id="t1", task=task)
    error = RuntimeError("boom")
    tracking.record_lost_failure(sender=task, task_id="t1", exception=error)
    tracking.record_run(task_id="t1", task=task, retval=error, state="FAILURE")
    [run] = runs.last_runs()
    assert (run["state"], run["failures"], run["runs"], run["attempts"]) == ("FAILURE", 1, 1, 2)
    assert run["runtime_s"] is not None


def test_other_tasks_are_not_recorded(runs):
    other = SimpleNamespace(name="celery.chord_unlock", request=SimpleNamespace(retries=0))
    tracking.record_lost_failure(sender=other, task_id="x", exception=WorkerLostError("lost"))
    assert runs.last_runs() == []

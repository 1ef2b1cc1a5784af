"""Issue 14, part 3: a poison task stops, and the other tasks keep flowing meanwhile.

``cachewarm.test_poison`` (tests/support/poison.py, loaded with ``--include``)
SIGKILLs its own pool process every time it runs, under the project's real retry
policy. Each loss is a ``WorkerLostError`` in the worker's main process, which
re-sends the task 2 s later (``task_retry_on_worker_lost``) until its 3 retries
are used up, then acknowledges it and stores FAILURE. Before issue 14 it was
requeued at once, forever (``reject_on_worker_lost``).
"""

from __future__ import annotations

import json
import time

import pytest

from cachewarm import service
from cachewarm.batching import chunked
from cachewarm.cache import NO_VALUE
from cachewarm.settings import Settings
from tests.integration.test_flower import start_flower
from tests.support.celery_procs import celery_app_for, start_worker
from tests.support.items import restaurant
from tests.support.poison import NAME
from tests.support.tables import batch_put
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_ATTEMPTS = 4  # 1 run + WORKER_LOST_RETRIES (3), workers/retry.py


def test_a_task_that_kills_its_process_stops_after_four_attempts(rel_env, table, ledger, celery_proc, cli, tmp_path,
                                                                record):
    names = [f"Flowing {i:03d}" for i in range(40)]
    batch_put(table, [restaurant(n) for n in names])
    flower = start_flower(celery_proc, rel_env)  # before the task: Flower knows tasks from their events
    worker = start_worker(celery_proc, rel_env, include=("tests.support.poison",))
    login = (flower.user, flower.password)
    wait_until(lambda: json.loads(flower.get("/api/workers?refresh=1", auth=login)[1] or b"{}"), 60,
               "Flower to see the worker", interval=0.5)

    attempts_file = tmp_path / "attempts.jsonl"
    app = celery_app_for(rel_env)
    sent_at = time.time()
    poison_id = app.send_task(NAME, args=[str(attempts_file)]).id
    wait_until(lambda: ledger.starts(NAME)[poison_id], 30, "the poison task's first run")
    # Other work, queued while the poison task is being retried, on the same queue and worker.
    others = [app.send_task("cachewarm.warm_names", args=[chunk]).id for chunk in chunked(names, 4)]

    result = app.AsyncResult(poison_id)
    wait_until(lambda: result.state == "FAILURE", 90, "the poison task to fail for good", interval=0.2)
    failed_at = time.time()
    wait_until(lambda: ledger.done(others), 60, "the other tasks to run")
    attempts = [json.loads(line) for line in attempts_file.read_text().splitlines()]
    assert len(attempts) == ledger.starts(NAME)[poison_id] == MAX_ATTEMPTS
    assert [a["retries"] for a in attempts] == [0, 1, 2, 3]
    assert len({a["pid"] for a in attempts}) == MAX_ATTEMPTS  # each run took a process down
    meta = app.backend.get_task_meta(poison_id)  # the result backend: FAILURE and the reason
    assert meta["status"] == "FAILURE" and type(meta["result"]).__name__ == "WorkerLostError"
    assert "signal 9 (SIGKILL)" in str(meta["result"])
    assert worker.process.poll() is None  # the worker itself lives on

    # Flower saw every retry and the final failure.
    def flower_failure() -> dict | None:
        status, body = flower.get(f"/api/task/info/{poison_id}", auth=login)
        info = json.loads(body) if status == 200 else {}
        return info if info.get("state") == "FAILURE" else None

    info = wait_until(flower_failure, 30, "Flower to show the failure", interval=0.5)
    # Celery 5.7's task-failed event for a lost process reprs billiard's wrapper (the "exception" field
    # reads "ExceptionWithTraceback()", request.py on_failure); the reason is in its traceback field.
    assert "WorkerLostError" in f"{info.get('exception')} {info.get('traceback')}", info
    assert info["name"] == NAME and info["retries"] == MAX_ATTEMPTS - 1

    # `cachewarm stats` shows the failure with its attempts (task_postrun never ran for it).
    stats = cli("stats", "--json", env=rel_env)
    assert stats.returncode == 0, stats.stderr
    run = next(r for r in json.loads(stats.stdout)["tasks"] if r["task"] == NAME)
    assert (run["state"], run["task_id"], run["attempts"], run["failures"], run["runs"]) \
        == ("FAILURE", poison_id, MAX_ATTEMPTS, 1, 1)
    assert run["error"].startswith("WorkerLostError")
    human = cli("stats", env=rel_env)
    assert human.returncode == 0, human.stderr
    row = next(line for line in human.stdout.splitlines() if NAME in line)
    assert "FAILURE" in row and "WorkerLostError" in row and f" {MAX_ATTEMPTS} " in row, row

    # Meanwhile the other tasks ran, each once, and warmed their names.
    assert ledger.missing(others) == [] and ledger.duplicates(others) == 0
    engine = service.engine(Settings.from_env(rel_env))
    assert [n for n in names if engine.peek(n) is NO_VALUE] == []
    others_done = max(r["t"] for r in ledger.records() if r["id"] in others and r["event"] == "end")
    app.close()
    record(attempts=len(attempts), attempt_bound=MAX_ATTEMPTS, poison_failed_after_s=round(failed_at - sent_at, 1),
           other_tasks=len(others), other_tasks_done_after_s=round(others_done - sent_at, 1),
           other_tasks_lost=0, duplicates=ledger.duplicates(others), flower_state=info["state"],
           flower_retries=info["retries"], stats_attempts=run["attempts"])

"""One way to follow a task (workers/progress.py ``follow``), and the three commands that use it.

Celery's Redis result backend tells a waiting client of each state change over
pub/sub, which fakeredis cannot carry across threads; these tests use the
session's private redis-server (tests/conftest.py, never 6379) as the result
backend, and a thread in the test stands in for the worker by storing states
exactly as ``Task.update_state`` does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from celery import Celery
from celery.result import AsyncResult

import cachewarm_cli
from cachewarm.errors import CachewarmError, TransportError
from loaders.report import LoadReport
from workers.progress import TaskFailed, TaskTimeout, follow


@pytest.fixture
def backend_app(redis_server):
    app = Celery("shell-tests", broker="memory://", backend=redis_server.url)
    yield app
    app.close()


def pending(app) -> AsyncResult:
    return AsyncResult(uuid.uuid4().hex, app=app)


def play(app, task_id: str, steps: list[tuple[float, str, object]]) -> threading.Thread:
    """A stand-in worker: after each delay, store (state, meta) for ``task_id``."""
    def run() -> None:
        for delay, state, meta in steps:
            time.sleep(delay)
            if state == "FAILURE":
                app.backend.mark_as_failure(task_id, meta)
            else:
                app.backend.store_result(task_id, meta, state)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_follow_sees_every_progress_update_then_returns_the_value(backend_app):
    result = pending(backend_app)
    progress = [(0.1, "PROGRESS", {"done": d, "total": 3}) for d in (1, 2, 3)]
    play(backend_app, result.id, [(0.2, "STARTED", {}), *progress, (0.1, "SUCCESS", {"run_id": "r1"})])
    seen: list[dict] = []
    assert follow(result, seen.append, timeout=10) == {"run_id": "r1"}
    assert seen == [{"done": 1, "total": 3}, {"done": 2, "total": 3}, {"done": 3, "total": 3}]


def test_follow_shows_a_task_already_in_progress_at_once(backend_app):
    result = pending(backend_app)
    backend_app.backend.store_result(result.id, {"done": 5, "total": 9}, "PROGRESS")
    play(backend_app, result.id, [(0.3, "SUCCESS", 1)])
    seen: list[dict] = []
    assert follow(result, seen.append, timeout=10) == 1
    assert seen == [{"done": 5, "total": 9}]


def test_follow_hints_once_at_a_task_nobody_takes(backend_app):
    result = pending(backend_app)
    hints: list[float] = []
    started = time.monotonic()
    with pytest.raises(TaskTimeout) as raised:
        follow(result, lambda meta: None, timeout=1.5, pending_hint=lambda: hints.append(time.monotonic()),
               pending_hint_after=0.5)
    assert len(hints) == 1 and 0.4 < hints[0] - started < 1.4
    assert 1.4 < time.monotonic() - started < 4
    assert str(raised.value) == (f"no worker finished task {result.id} within 2s; "
                                 "is 'celery -A workers worker' running?")
    assert isinstance(raised.value, TransportError)


def test_follow_gives_no_hint_when_a_worker_has_the_task(backend_app):
    result = pending(backend_app)
    play(backend_app, result.id, [(0.1, "STARTED", {}), (0.8, "SUCCESS", "ok")])
    hints: list[int] = []
    assert follow(result, lambda meta: None, timeout=10, pending_hint=lambda: hints.append(1),
                  pending_hint_after=0.4) == "ok"
    assert hints == []


def test_follow_raises_task_failed_with_the_workers_exception(backend_app):
    result = pending(backend_app)
    play(backend_app, result.id, [(0.2, "FAILURE", ValueError("bad chunk"))])
    with pytest.raises(TaskFailed) as raised:
        follow(result, lambda meta: None, timeout=10)
    assert raised.value.state == "FAILURE" and isinstance(raised.value.error, ValueError)
    assert isinstance(raised.value, CachewarmError)


# -- the commands -------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [["--async", "--wait"], ["--wait"]])
def test_load_async_wait_follows_progress_and_prints_the_merged_report(runner, backend_app, monkeypatch, tmp_path,
                                                                        flags):
    from cachewarm_cli import load

    result = pending(backend_app)
    monkeypatch.setattr(load, "_enqueue", lambda *args, **kwargs: result)
    monkeypatch.setattr(load, "PLAIN_PROGRESS_SECONDS", 0.0)  # stderr is no terminal here: a line per update
    report = LoadReport(source=str(tmp_path / "items.jsonl"), lines=4, written=4, seconds=2.0)
    play(backend_app, result.id, [(0.2, "PROGRESS", {"done": 2, "total": 4}),
                                  (0.2, "PROGRESS", {"done": 4, "total": 4}), (0.2, "SUCCESS", report.to_dict())])
    out = runner.invoke(cachewarm_cli.app, ["load", "items.jsonl", *flags])
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith(f"loaded {report.source}: 4 lines, 4 written, 0 rejected in 2.0s")
    lines = out.stderr.splitlines()
    assert lines[0] == f"queued cachewarm.bulk_load {result.id} for items.jsonl"
    assert [line.split(" (")[0] for line in lines[1:]] == ["load: 50%", "load: 100%"]


def test_load_async_wait_reports_a_failed_load_in_one_line(run_main, backend_app, monkeypatch):
    from cachewarm_cli import load

    result = pending(backend_app)
    monkeypatch.setattr(load, "_enqueue", lambda *args, **kwargs: result)
    play(backend_app, result.id, [(0.2, "FAILURE", OSError("disk full"))])
    code, _, err = run_main("load", "items.jsonl", "--async", "--wait")
    assert code == 1
    assert err.splitlines()[-1] == f"error: cachewarm.bulk_load {result.id} failed: OSError: disk full"


def test_bench_wait_json_follows_the_task_then_reads_the_stored_run(runner, backend_app, monkeypatch):
    from cachewarm_cli import bench
    from workers import app as celery_app

    result = pending(backend_app)
    sent: list[tuple] = []

    def send_task(name, **kwargs):
        sent.append((name, kwargs))
        return result

    run = {"run_id": "r1", "sample": 2, "samples": {"db_ms": [1.0]}, "speedup_p50": 9.0}

    class Store:
        def get(self, run_id):
            assert run_id == "r1"
            return run

    monkeypatch.setattr(celery_app, "send_task", send_task)
    monkeypatch.setattr(bench, "_store", Store)
    play(backend_app, result.id, [(0.2, "PROGRESS", {"done": 1, "total": 2}), (0.2, "SUCCESS", {"run_id": "r1"})])
    out = runner.invoke(cachewarm_cli.app, ["bench", "--sample", "2", "--wait", "--json"])
    assert out.exit_code == 0, out.output
    assert sent == [("cachewarm.run_benchmark", {"kwargs": {"sample": 2}})]
    assert out.stdout == '{"run_id": "r1", "sample": 2, "speedup_p50": 9.0}\n'


def test_bench_wait_timeout_is_one_line_naming_the_task(run_main, backend_app, monkeypatch):
    from workers import app as celery_app

    result = pending(backend_app)
    monkeypatch.setattr(celery_app, "send_task", lambda name, **kwargs: result)
    code, out, err = run_main("bench", "--wait", "--timeout", "1")
    assert (code, out) == (1, "")
    assert err == (f"error: no worker finished cachewarm.run_benchmark {result.id} within 1s; "
                   "is 'celery -A workers worker' running?\n")


def test_warm_wait_follows_each_chunk_and_merges_their_reports(runner, backend_app, monkeypatch):
    from cachewarm_cli import warm

    names = [f"R{i:03d}" for i in range(warm.CHUNK + 1)]  # two chunk tasks
    results = [pending(backend_app), pending(backend_app)]
    calls: list[dict] = []

    def send_all(celery_app, name, calls_):
        calls.extend(calls_)
        return results

    monkeypatch.setattr("cachewarm_cli.broker.send_all", send_all)
    play(backend_app, results[0].id, [(0.2, "SUCCESS", {"warmed": names[:-1], "not_found": []})])
    play(backend_app, results[1].id, [(0.3, "SUCCESS", {"warmed": [], "not_found": names[-1:]})])
    out = runner.invoke(cachewarm_cli.app, ["warm", *names, "--wait", "--json"])
    assert out.exit_code == 0, out.output
    assert [len(call["args"][0]) for call in calls] == [warm.CHUNK, 1]
    assert json.loads(out.stdout) == {"warmed": names[:-1], "not_found": ["R100"]}


def test_warm_wait_timeout_names_the_whole_timeout(run_main, backend_app, monkeypatch):
    result = pending(backend_app)
    monkeypatch.setattr("cachewarm_cli.broker.send_all", lambda *args: [result])
    code, _, err = run_main("warm", "A", "--wait", "--timeout", "1")
    assert code == 1
    assert err == (f"error: no worker finished task {result.id} within 1s; "
                   "is 'celery -A workers worker' running?\n")

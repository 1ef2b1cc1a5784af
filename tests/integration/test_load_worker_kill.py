"""Issue 3 acceptance: SIGKILL a worker in the middle of ``load --async``; the table still gets every item.

The load is a canvas (workers/fanout.py): ``cachewarm.bulk_load`` plans it and
replaces itself with a chord of ``cachewarm.load_chunk`` tasks whose callback,
``cachewarm.merge_load``, takes over the bulk load's id. Two ways a worker dies:

* its pool processes are SIGKILLed (the OOM killer's usual victim): the main
  process sees the loss and, because the tasks are ``acks_late`` with
  ``reject_on_worker_lost``, requeues them at once; new pool processes take
  them back;
* the whole worker is SIGKILLed (a lost node): nothing acknowledges or
  requeues its tasks; the broker hands them out again once they are older than
  the visibility timeout, to a new worker. The test shortens that timeout with
  ``BROKER_VISIBILITY_TIMEOUT_SECONDS``.

Either way the chunks run again with the same task ids; puts are idempotent,
so re-running a chunk costs time only, and the chord counts each chunk once.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import generate as _generate
from tests.support.tables import count_items as _count

pytestmark = pytest.mark.integration

WORKER_ARGS = ["worker", "--loglevel=INFO", "--concurrency=2", "--without-mingle", "--without-gossip"]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _submit(cli, env, path: Path, tmp_path: Path) -> str:
    done = cli("load", str(path), "--async", "--chunk-lines", "2000", "--rejects", str(tmp_path / "r.jsonl"),
               env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _wait_for_progress(result, timeout: float = 120) -> dict:
    """Block until the followed id shows some lines done by the chunks (and is not finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = result.info
        if result.state == "PROGRESS" and isinstance(info, dict) and info.get("done", 0) > 0:
            return info
        assert result.state not in ("SUCCESS", "FAILURE"), f"finished before the kill: {result.state}"
        time.sleep(0.05)
    raise AssertionError("the load never reported progress")


def test_killed_pool_processes_lose_nothing(cli, worker, stack_env, table, celery_client, tmp_path):
    path = tmp_path / "items.jsonl"
    lines = _generate(cli, stack_env, path, restaurants=2500, seed=5)
    result = celery_client.AsyncResult(_submit(cli, stack_env, path, tmp_path))
    info = _wait_for_progress(result)
    assert info["total"] == lines and info["chunks"] > 10

    pool = _children(worker.process.pid)
    assert pool, "the worker has no pool processes"
    for pid in pool:
        os.kill(pid, signal.SIGKILL)

    report = result.get(timeout=600)
    assert (report["lines"], report["written"], report["rejected"], report["chunks"]) == (lines, lines, 0,
                                                                                         info["chunks"])
    assert _count(table) == lines
    log = worker.log()
    assert "signal 9" in log or "WorkerLostError" in log, log[-2000:]


def test_a_worker_killed_whole_is_replaced_and_the_table_holds_every_item(cli, celery_proc, stack_env, table,
                                                                          celery_client, tmp_path):
    env = dict(stack_env, BROKER_VISIBILITY_TIMEOUT_SECONDS="15")
    first = celery_proc([*WORKER_ARGS, f"--hostname=first-{uuid.uuid4().hex[:6]}@%h"], env, name="first")
    first.wait_for("ready.")
    path = tmp_path / "items.jsonl"
    lines = _generate(cli, env, path, restaurants=2500, seed=6)
    result = celery_client.AsyncResult(_submit(cli, env, path, tmp_path))
    _wait_for_progress(result)

    first.kill()  # SIGKILL to the worker's whole process group: nothing acknowledges, nothing requeues
    assert _count(table) < lines
    second = celery_proc([*WORKER_ARGS, f"--hostname=second-{uuid.uuid4().hex[:6]}@%h"], env, name="second")
    second.wait_for("ready.")

    report = result.get(timeout=600)
    assert (report["lines"], report["written"], report["rejected"]) == (lines, lines, 0)
    assert report["load_id"] == result.id
    assert _count(table) == lines
    log = second.log()
    assert "cachewarm.load_chunk" in log  # the killed worker's chunks, handed out again
    assert f"cachewarm.merge_load[{result.id}]" in log  # the callback, under the id the shell printed
    assert not (tmp_path / "r.jsonl").exists()  # nothing rejected, so no rejects file

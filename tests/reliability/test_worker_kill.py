"""Issue 7, faults 1 and 2: a worker's main process SIGKILLed mid-work; a new worker finishes it.

What really happens with kombu's Redis transport (checked here, not assumed): a
task the worker took is parked in the ``unacked`` hash (acks_late) until it is
acknowledged. SIGKILL of the worker's main process also kills its pool children
(Celery sets PR_SET_PDEATHSIG), so nothing acknowledges it and nothing puts it
back. Only a sweep for unacknowledged messages older than the visibility timeout
returns it to the queue: one sweep when a worker starts, then one every
``unacked_restore_interval`` seconds (throttle 1; workers/config.py). With the
default timeout (240 s, test_node_loss.py) a killed worker's tasks come back
after about four minutes; these tests set BROKER_VISIBILITY_TIMEOUT_SECONDS to a
few seconds, which is safe only because every task here runs for well under that.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from cachewarm import service
from cachewarm.cache import NO_VALUE
from cachewarm.settings import Settings
from devstack.dynamo_proxy import DynamoProxy
from tests.support.celery_procs import celery_app_for, group_alive, start_worker
from tests.support.cli import generate
from tests.support.items import restaurant, review
from tests.support.tables import batch_put, digest, source_items, table_items
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VISIBILITY = 8  # seconds; every task in these tests runs in well under this


def sigkill_main(worker) -> None:
    """SIGKILL the worker's main process only, like the OOM killer picking it."""
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait(10)


def test_sigkill_mid_warm_of_1000_names_every_name_warmed_after_redelivery(
        rel_env, table, dynalite, ledger, celery_proc, cli, record):
    names = [f"Warm {i:04d}" for i in range(1000)]
    batch_put(table, [restaurant(n) for n in names] + [review(n, f"{i:040d}") for i, n in enumerate(names[:50])])
    with DynamoProxy(dynalite.url) as proxy:
        proxy.faults.delay["Query"] = 0.06  # a chunk of 100 takes about a second: the kill lands mid-chunk
        env = {**rel_env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url,
               "BROKER_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY)}
        first = start_worker(celery_proc, env, name="first")
        queued = cli("warm", *names, "--json", env=env)
        assert queued.returncode == 0, queued.stderr
        ids = json.loads(queued.stdout)["task_ids"]
        assert len(ids) == 10

        wait_until(lambda: len(ledger.successes()) >= 1, 60, "the first chunk to finish")
        sigkill_main(first)
        killed_at = time.time()
        running = [i for i in ledger.starts() if not ledger.successes()[i]]
        # Celery's pool children die with their parent (PR_SET_PDEATHSIG): nothing of the old worker runs on.
        wait_until(lambda: not group_alive(first.process.pid), 10, "the killed worker's pool processes to exit")
        in_flight = [i for i in ids if not ledger.successes()[i]]
        assert running, "the kill should land while chunks are running"

        start_worker(celery_proc, env, name="second")
        wait_until(lambda: ledger.done(ids), 90, "every chunk to run after redelivery")
    recovered = max(r["t"] for r in ledger.records() if r["event"] == "end" and r["id"] in running) - killed_at
    engine = service.engine(Settings.from_env(rel_env))
    cold = [n for n in names if engine.peek(n) is NO_VALUE]
    assert cold == []
    assert ledger.missing(ids) == []
    redelivered = sorted({r["id"] for r in ledger.records() if r["event"] == "start" and r["redelivered"]})
    assert set(running) <= set(redelivered)
    duplicates = ledger.duplicates(ids)
    assert duplicates <= 2  # at most the worker's prefetch window (concurrency 2 x multiplier 1) runs twice
    record(names=len(names), chunks=len(ids), running_at_kill=len(running), unfinished_at_kill=len(in_flight),
           redelivered=len(redelivered), lost=0, duplicates=duplicates, duplicate_bound=2,
           visibility_timeout_s=VISIBILITY, recovery_s=round(recovered, 1))


def test_sigkill_mid_bulk_load_then_the_table_equals_the_source(rel_env, table, ledger, celery_proc, cli, tmp_path,
                                                               record):
    path = tmp_path / "items.jsonl"
    lines = generate(cli, rel_env, path, restaurants=300, reviews=20, seed=11)
    env = {**rel_env, "BROKER_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY)}
    first = start_worker(celery_proc, env, name="first")
    submitted = cli("load", str(path), "--async", "--chunk-lines", "500", "--rejects", str(tmp_path / "r.jsonl"),
                    env=env)
    assert submitted.returncode == 0, submitted.stderr
    load_id = submitted.stdout.strip()

    wait_until(lambda: ledger.successes("cachewarm.load_chunk"), 60, "the first chunk to finish")
    sigkill_main(first)
    killed_at = time.time()
    wait_until(lambda: not group_alive(first.process.pid), 10, "the killed worker's pool processes to exit")
    # The bulk load replaced itself by the chord at once (its run ends IGNORED); chunks were running.
    assert ledger.starts("cachewarm.bulk_load")[load_id] == 1 and not ledger.successes("cachewarm.bulk_load")
    ok = ledger.successes()
    running = [i for i in ledger.starts("cachewarm.load_chunk") if not ok[i]]
    written_at_kill = len(table_items(table))
    assert running and written_at_kill < lines, "the kill should land mid-load"

    start_worker(celery_proc, env, name="second")
    wait_until(lambda: ledger.successes("cachewarm.merge_load")[load_id], 120,
               "the load's callback to finish on the new worker, under the load's id")
    recovered = ledger.success_times("cachewarm.merge_load")[-1] - killed_at
    app = celery_app_for(env)
    report = app.AsyncResult(load_id).get(timeout=30)
    app.close()
    assert (report["lines"], report["written"], report["rejected"]) == (lines, lines, 0)
    assert digest(table_items(table)) == digest(source_items(path))  # count and checksum
    assert not (tmp_path / "r.jsonl").exists()  # nothing was rejected
    chunk_runs = ledger.successes("cachewarm.load_chunk")
    assert len(chunk_runs) == report["chunks"]  # every chunk finished, under its own id
    duplicates = ledger.duplicates()
    assert duplicates <= 2  # at most the prefetch window (concurrency 2 x multiplier 1) ran twice
    assert ledger.successes("cachewarm.merge_load")[load_id] == 1  # the chord sent its callback once
    assert set(running) <= {r["id"] for r in ledger.records() if r["event"] == "start" and r["redelivered"]}
    count, checksum = digest(source_items(path))
    record(lines=lines, chunk_tasks=len(chunk_runs), items_at_kill=written_at_kill, running_at_kill=len(running),
           lost=0, duplicates=duplicates, duplicate_bound=2, visibility_timeout_s=VISIBILITY,
           recovery_s=round(recovered, 1), table_count=count, checksum=checksum[:16])


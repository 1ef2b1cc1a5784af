"""Issue 14, part 2: a lost node costs minutes with the default settings, not an hour.

A user measured it: a worker's process group SIGKILLed in the middle of
``cachewarm load --async`` of 51,040 items, a replacement started, and 400 s
later the table still lacked 11,868 items: the killed worker's unacknowledged
chunks waited for the 3,600 s visibility timeout.

Here nothing is tuned (no BROKER_VISIBILITY_TIMEOUT_SECONDS, no other
variable): the default visibility timeout is the longest hard time limit
(120 s) + the longest countdown (60 s) + a 60 s margin = 240 s, kombu sweeps
every 10 s, and chunks are 5,000 lines (workers/config.py). The load must end
within 360 s of the replacement's start, the table must equal the source, and
every chunk must have succeeded under its own id.
"""

from __future__ import annotations

import time

import pytest

from cachewarm.settings import Settings
from tests.support.celery_procs import celery_app_for, group_alive, start_worker
from tests.support.cli import generate
from tests.support.tables import count_items, digest, source_items, table_items
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ITEMS = 51_040  # the user's load
DEADLINE = 360  # seconds from the replacement's start to the load's end
TUNING = ("BROKER_VISIBILITY_TIMEOUT_SECONDS", "WARM_HOT_SCHEDULE", "INVALIDATE_STALE_SCHEDULE")


def test_a_lost_node_mid_load_costs_minutes_with_the_defaults(rel_env, table, ledger, celery_proc, cli, tmp_path,
                                                              record):
    assert not [name for name in TUNING if name in rel_env], "this test runs on the defaults"
    visibility = Settings.from_env(rel_env).broker_visibility_timeout
    path = tmp_path / "items.jsonl"
    # Review counts per restaurant vary (log-normal): generate a little more, keep the first 51,040 lines.
    generated = tmp_path / "generated.jsonl"
    assert generate(cli, rel_env, generated, restaurants=2320, reviews=21, seed=14) >= ITEMS
    with generated.open("rb") as source, path.open("wb") as target:
        for _ in range(ITEMS):
            target.write(source.readline())
    lines = ITEMS
    first = start_worker(celery_proc, rel_env, name="first")
    rejects = tmp_path / "r.jsonl"
    submitted = cli("load", str(path), "--async", "--rejects", str(rejects), env=rel_env)
    assert submitted.returncode == 0, submitted.stderr
    load_id = submitted.stdout.strip()

    def mid_load() -> bool:
        ok = ledger.successes("cachewarm.load_chunk")
        return bool(ok) and any(not ok[i] for i in ledger.starts("cachewarm.load_chunk"))

    wait_until(mid_load, 120, "a chunk to finish while others run", interval=0.05)
    first.kill()  # SIGKILL to the whole process group: a lost node, nothing acknowledges or requeues
    killed_at = time.time()
    first.process.wait(10)
    wait_until(lambda: not group_alive(first.process.pid), 10, "the killed worker's processes to exit")
    ok = ledger.successes("cachewarm.load_chunk")
    running = [i for i in ledger.starts("cachewarm.load_chunk") if not ok[i]]
    finished_at_kill = len(ok)
    items_at_kill = count_items(table)
    assert running and items_at_kill < lines, "the kill should land mid-load"

    replacement_at = time.time()
    start_worker(celery_proc, rel_env, name="replacement")
    wait_until(lambda: ledger.successes("cachewarm.merge_load")[load_id], DEADLINE - (time.time() - replacement_at),
               "the load to finish on the replacement", interval=0.5)
    done_at = ledger.success_times("cachewarm.merge_load")[-1]
    assert done_at - replacement_at < DEADLINE
    app = celery_app_for(rel_env)
    report = app.AsyncResult(load_id).get(timeout=30)
    app.close()
    assert report["load_id"] == load_id  # the merged report is the bulk load's result, under its id
    assert (report["lines"], report["written"], report["rejected"]) == (lines, lines, 0)
    assert digest(table_items(table)) == digest(source_items(path))  # count and checksum
    assert not rejects.exists()
    chunk_runs = ledger.successes("cachewarm.load_chunk")
    assert len(chunk_runs) == report["chunks"] == len(ledger.starts("cachewarm.load_chunk"))
    assert ledger.missing([f"{load_id}-chunk-{i}" for i in range(report["chunks"])]) == []
    redelivered = {r["id"] for r in ledger.records() if r["event"] == "start" and r["redelivered"]}
    assert set(running) <= redelivered  # the lost chunks came back through the broker's sweep
    duplicates = ledger.duplicates()
    assert duplicates <= 2  # at most what the lost node held: concurrency 2, no prefetch
    assert ledger.successes("cachewarm.merge_load")[load_id] == 1
    back = min(r["t"] for r in ledger.records() if r["event"] == "start" and r["id"] in running and r["redelivered"])
    count, checksum = digest(source_items(path))
    record(lines=lines, chunks=report["chunks"], finished_at_kill=finished_at_kill, running_at_kill=len(running),
           items_at_kill=items_at_kill, visibility_timeout_s=visibility, lost=0, duplicates=duplicates,
           duplicate_bound=2, lost_chunks_back_after_kill_s=round(back - killed_at, 1),
           done_after_kill_s=round(done_at - killed_at, 1),
           done_after_replacement_start_s=round(done_at - replacement_at, 1), deadline_s=DEADLINE,
           table_count=count, checksum=checksum[:16])


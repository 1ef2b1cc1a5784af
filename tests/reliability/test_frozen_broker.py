"""Issue 14, part 4: the broker's redis-server frozen (SIGSTOP) for 30 s under a worker, beat and traffic.

A frozen server is not a dead one: the kernel still accepts connections and
buffers what clients send, and nothing answers. When it resumes (SIGCONT) it
answers everything at once, to whichever connections the clients kept. The
worker and beat must consume and dispatch again, nothing sent before the freeze
may be lost, and nothing may run twice beyond the bound (docs/reliability.md,
"Bounds"). Settings are the defaults but for the beat schedule: a
visibility timeout below freeze + task would redeliver tasks that are alive.
"""

from __future__ import annotations

import time

import pytest

from cachewarm import service
from cachewarm.batching import chunked
from cachewarm.cache import NO_VALUE
from cachewarm.settings import Settings
from devstack.dynamo_proxy import DynamoProxy
from tests.support.celery_procs import celery_app_for, start_worker
from tests.support.items import restaurant
from tests.support.tables import batch_put
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AOF = ("--appendonly", "yes", "--appendfsync", "everysec")
FROZEN_S = 30
RECOVERY_S = 60  # the worker consumes and beat dispatches again within this long after the resume
DUPLICATE_BOUND = 2  # what one worker holds: concurrency 2, no prefetch (docs/reliability.md, Bounds)


def test_worker_and_beat_recover_from_a_frozen_broker(redis_proc, rel_env, table, dynalite, ledger, celery_proc,
                                                     record):
    server = redis_proc(*AOF)
    names = [f"Frozen {i:03d}" for i in range(160)]
    batch_put(table, [restaurant(n) for n in names])
    with DynamoProxy(dynalite.url) as proxy:
        proxy.faults.delay["Query"] = 0.1  # a task of 8 names takes about 0.1-0.2 s: some run when Redis freezes
        env = {**rel_env, "REDIS_URL": server.url, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url,
               "WARM_HOT_SCHEDULE": "2", "INVALIDATE_STALE_SCHEDULE": "off", "BENCHMARK_SCHEDULE": "off"}
        visibility = Settings.from_env(env).broker_visibility_timeout
        worker = start_worker(celery_proc, env)
        beat = celery_proc(["beat", "--loglevel=INFO"], env, name="beat")
        wait_until(lambda: ledger.successes("cachewarm.warm_hot"), 60, "beat's first warm_hot to run")

        client = celery_app_for(env)
        before = [client.send_task("cachewarm.warm_names", args=[chunk]).id for chunk in chunked(names[:120], 4)]
        client.close()
        wait_until(lambda: len(ledger.successes()) >= 3 + len(ledger.successes("cachewarm.warm_hot")), 30,
                   "a few of them to run")
        server.pause()
        frozen_at = time.time()
        running_at_freeze = [i for i in before if ledger.starts()[i] and not ledger.successes()[i]]
        time.sleep(FROZEN_S)
        server.resume()
        resumed_at = time.time()

        # A client publishing right after the resume, and the worker that must pick it up.
        client = celery_app_for(env)
        after = [client.send_task("cachewarm.warm_names", args=[chunk]).id for chunk in chunked(names[120:], 4)]
        client.close()
        wait_until(lambda: any(ledger.successes()[i] for i in after), RECOVERY_S,
                   "a task sent after the resume to succeed (the worker consumes again)", interval=0.1)
        worker_back = min(r["t"] for r in ledger.records()
                          if r["id"] in after and r["event"] == "end" and r.get("state") == "SUCCESS") - resumed_at

        def beat_ran_after_resume() -> list[float]:
            return [r["t"] for r in ledger.records() if r["name"] == "cachewarm.warm_hot" and r["event"] == "start"
                    and r["t"] > resumed_at and ledger.successes()[r["id"]]]

        wait_until(beat_ran_after_resume, RECOVERY_S - (time.time() - resumed_at),
                   "a beat dispatch after the resume to run", interval=0.2)
        beat_back = min(beat_ran_after_resume()) - resumed_at
        assert worker_back < RECOVERY_S and beat_back < RECOVERY_S
        assert worker.process.poll() is None and beat.process.poll() is None

        # Nothing sent before the freeze is lost: a task whose acknowledgement died with a connection
        # comes back once older than the visibility timeout (default 240 s) and runs again.
        wait_until(lambda: ledger.done(before + after), visibility + 60, "every task sent to run", interval=0.5)
        all_done = max(r["t"] for r in ledger.records() if r["id"] in before + after and r["event"] == "end")
        proxy.faults.delay.clear()
    assert ledger.missing(before + after) == []
    duplicates = ledger.duplicates(before + after)
    assert duplicates <= DUPLICATE_BOUND
    beat_runs = ledger.successes("cachewarm.warm_hot")
    assert max(beat_runs.values()) == 1  # no beat dispatch ran twice
    engine = service.engine(Settings.from_env(env))
    assert [n for n in names if engine.peek(n) is NO_VALUE] == []
    redelivered = sorted({r["id"] for r in ledger.records() if r["event"] == "start" and r["redelivered"]})
    record(frozen_s=round(resumed_at - frozen_at, 1), tasks_before=len(before),
           running_at_freeze=len(running_at_freeze), tasks_after=len(after),
           worker_first_task_after_resume_s=round(worker_back, 2),
           beat_first_dispatch_after_resume_s=round(beat_back, 2),
           all_done_after_resume_s=round(all_done - resumed_at, 1),
           redelivered=len(redelivered), lost=0, duplicates=duplicates, duplicate_bound=DUPLICATE_BOUND,
           beat_runs=len(beat_runs), visibility_timeout_s=visibility)

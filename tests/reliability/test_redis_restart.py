"""Issue 7, fault 3: redis-server (broker and cache) SIGKILLed and restarted with AOF on.

Queued tasks survive the restart; a running worker reconnects and does not hang;
beat goes on dispatching. Every claim is checked against the ledger of what ran.
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
VISIBILITY = 10  # seconds; every task here runs in well under this


def test_queued_tasks_survive_kill_and_aof_restart(redis_proc, rel_env, table, ledger, celery_proc, record):
    server = redis_proc(*AOF)
    env = {**rel_env, "REDIS_URL": server.url}
    names = [f"Queued {i:03d}" for i in range(60)]
    batch_put(table, [restaurant(n) for n in names])
    client = celery_app_for(env)
    ids = [client.send_task("cachewarm.warm_names", args=[chunk]).id for chunk in chunked(names, 5)]
    client.close()
    assert server.client().llen("warm") == len(ids)

    server.kill()  # no worker ever saw these tasks; only the AOF holds them
    started = server.restart()
    assert server.client().llen("warm") == len(ids), "queued tasks lost across the restart"

    t0 = time.monotonic()
    start_worker(celery_proc, env)
    wait_until(lambda: ledger.done(ids), 60, "every queued task to run")
    drained = time.monotonic() - t0
    assert ledger.missing(ids) == []
    assert ledger.duplicates(ids) == 0
    engine = service.engine(Settings.from_env(env))
    assert [n for n in names if engine.peek(n) is NO_VALUE] == []
    record(queued=len(ids), lost=0, duplicates=ledger.duplicates(ids), redis_restart_s=round(started, 2),
           drain_after_worker_start_s=round(drained, 2))


def test_running_worker_and_beat_reconnect_after_redis_restart(redis_proc, rel_env, table, dynalite, ledger,
                                                              celery_proc, record):
    server = redis_proc(*AOF)
    names = [f"Live {i:03d}" for i in range(80)]
    batch_put(table, [restaurant(n) for n in names])
    with DynamoProxy(dynalite.url) as proxy:
        proxy.faults.delay["Query"] = 0.15  # a warm of 80 names takes about 1.5 s: it is running when Redis dies
        env = {**rel_env, "REDIS_URL": server.url, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url,
               "BROKER_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY), "WARM_HOT_SCHEDULE": "2",
               "INVALIDATE_STALE_SCHEDULE": "off", "BENCHMARK_SCHEDULE": "off"}
        worker = start_worker(celery_proc, env)
        beat = celery_proc(["beat", "--loglevel=INFO"], env, name="beat")
        wait_until(lambda: ledger.successes("cachewarm.warm_hot"), 60, "beat's first warm_hot to run")
        client = celery_app_for(env)
        in_flight = client.send_task("cachewarm.warm_names", args=[names]).id
        client.close()
        wait_until(lambda: ledger.starts()[in_flight], 30, "the in-flight warm to start")

        server.kill()
        down_at = time.time()
        time.sleep(3)  # the warm finishes meanwhile and cannot be acknowledged; BRPOP and beat's lock renewal fail
        server.restart()
        back_at = time.time()
        proxy.faults.delay.clear()

        # A client publishing right after the restart, and the worker that must pick it up.
        client = celery_app_for(env)
        ids = [client.send_task("cachewarm.warm_names", args=[chunk]).id for chunk in chunked(names, 5)]
        client.close()
        wait_until(lambda: ledger.done(ids), 90, "tasks sent after the restart to run (worker reconnected)")
        recovered = min(r["t"] for r in ledger.records() if r["id"] in ids and r["event"] == "end") - back_at
        wait_until(lambda: [t for t in ledger.success_times("cachewarm.warm_hot") if t > back_at], 90,
                   "beat to dispatch again after the restart")
        beat_recovered = min(t for t in ledger.success_times("cachewarm.warm_hot") if t > back_at) - back_at
        assert worker.process.poll() is None and beat.process.poll() is None
        assert ledger.missing(ids) == [] and ledger.duplicates(ids) == 0
        assert "Connection to broker lost" in worker.log()
        assert "Redis is back" in beat.log()
        # Every period beat sent ran exactly once, or expired unrun (beat sets expires to 0.9 of the
        # period, so a run the reconnecting worker could not start in time is dropped by design).
        beat.stop()
        sent = beat.log().count("Sending due task warm-hot") - beat.log().count("Message Error")

        def accounted() -> int:
            return len(ledger.successes("cachewarm.warm_hot")) + worker.log().count("Discarding revoked task")

        wait_until(lambda: accounted() >= sent, 30, "beat's tasks to run or expire")
        runs = ledger.successes("cachewarm.warm_hot")
        assert accounted() == sent and max(runs.values()) == 1, (sent, runs)
        # The warm running when Redis died can never be acknowledged (its channel died with the
        # connection): it is still "unacked" in Redis (AOF kept it) and comes back once older than the
        # visibility timeout, to run again and succeed. Its first run may have succeeded too (then
        # this is a duplicate, bounded by what was in flight: the worker's 2 processes) or failed
        # (the cache it writes to is the same Redis).
        def rerun_succeeded() -> list[dict]:
            runs = [r for r in ledger.records() if r["id"] == in_flight]
            return [r for r in runs if r["event"] == "end" and r.get("state") == "SUCCESS" and r["redelivered"]]

        wait_until(rerun_succeeded, VISIBILITY + 30, "the unacknowledged warm to come back and succeed")
        redelivered_after = rerun_succeeded()[0]["t"] - back_at
        in_flight_runs = ledger.starts()[in_flight]
        in_flight_duplicates = ledger.successes()[in_flight] - 1
        assert in_flight_runs == 2 and in_flight_duplicates <= 1
        record(outage_s=round(back_at - down_at, 2), worker_first_task_after_restart_s=round(recovered, 2),
               beat_first_dispatch_after_restart_s=round(beat_recovered, 2), lost=0,
               duplicates=ledger.duplicates(), beat_dispatches=sent, beat_runs=len(runs),
               beat_expired_unrun=sent - len(runs), in_flight_runs=in_flight_runs,
               in_flight_duplicate_successes=in_flight_duplicates,
               in_flight_back_after_s=round(redelivered_after, 1), duplicate_bound=2)

"""Issue 7, fault 4: the cache's Redis hangs, dies and comes back (the broker stays up).

Reads fail open to DynamoDB within the bound and nothing crashes; a warm queued
during the outage completes once Redis is back, and the cache fills again.
"""

from __future__ import annotations

import json
import time

import pytest

from cachewarm import service
from cachewarm.cache import NO_VALUE
from cachewarm.settings import Settings
from tests.support.celery_procs import start_worker
from tests.support.items import restaurant, review
from tests.support.tables import batch_put
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMES = ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]


def read_bound_ms(settings: Settings) -> float:
    """How long a read may take with the cache unreachable: one socket timeout (README: "the read
    goes to DynamoDB within the socket timeout"), plus the DynamoDB read (generous on a busy 2-core box)."""
    return settings.redis_timeout * 1000 + 400


def test_cache_redis_down_reads_fail_open_and_cache_refills(redis_proc, rel_env, table, ledger, celery_proc, cli,
                                                             record):
    cache_server = redis_proc()
    env = {**rel_env, "CACHE_REDIS_URL": cache_server.url}
    settings = Settings.from_env(env)
    batch_put(table, [restaurant(n) for n in NAMES] + [review("Alpha", "a" * 40)])
    worker = start_worker(celery_proc, env)
    engine = service.engine(settings)  # a long-lived reader, like a web process
    for name in NAMES:
        engine.fetch(name)
    assert engine.fetch("Alpha").cache == "hit"
    bound = read_bound_ms(settings)

    # 1. A hung cache (SIGSTOP: connections are accepted, nothing answers).
    cache_server.pause()
    time.sleep(settings.cache_backoff)
    hung = [cli("get", name, "--json", env=env) for name in NAMES[:2]]
    hung_engine = [engine.fetch(name) for name in NAMES]
    cache_server.resume()
    for result in hung:
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert (body["source"], body["cache"]) == ("db", "unavailable")
        assert body["latency_ms"] < bound, (body["latency_ms"], bound)
    assert all(r.found and r.source == "db" for r in hung_engine)
    assert hung_engine[0].latency_ms < bound
    # After one failure the engine skips the cache (backoff) instead of paying the timeout on every read.
    assert max(r.latency_ms for r in hung_engine[1:]) < hung_engine[0].latency_ms

    # 2. A dead cache (SIGKILL, connection refused).
    time.sleep(settings.cache_backoff)
    cache_server.kill()
    dead = [cli("get", name, "--json", env=env) for name in NAMES]
    for result in dead:
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert (body["source"], body["cache"], body["found"]) == ("db", "unavailable", True)
        assert body["latency_ms"] < bound
        assert "Traceback" not in result.stderr
    dead_engine = [engine.fetch(name) for name in NAMES * 10]
    assert all(r.found and r.source == "db" for r in dead_engine)
    stats = cli("stats", env=env)
    assert stats.returncode == 1 and "cannot reach the cache's Redis" in stats.stderr
    assert "Traceback" not in stats.stderr
    # A warm queued while the cache is down is retried, not dropped.
    queued = cli("warm", *NAMES, "--json", env=env)
    assert queued.returncode == 0, queued.stderr
    (warm_id,) = json.loads(queued.stdout)["task_ids"]
    wait_until(lambda: ledger.starts()[warm_id] >= 1, 30, "the warm task to start during the outage")
    time.sleep(1.5)

    # 3. The cache comes back (empty: it kept nothing).
    cache_server.restart()
    back = time.monotonic()
    # The long-lived reader uses the cache again once its backoff ends...
    wait_until(lambda: engine.fetch("Alpha").source == "cache", 30, "a cache hit after the restart",
               interval=0.1)
    refilled = time.monotonic() - back
    # ...and so do one-shot CLI reads.
    assert json.loads(cli("get", "Bravo", "--json", env=env).stdout)["cache"] in ("hit", "miss")
    assert json.loads(cli("get", "Bravo", "--json", env=env).stdout)["source"] == "cache"
    wait_until(lambda: ledger.successes()[warm_id], 120, "the warm queued during the outage to complete")
    warmed = time.monotonic() - back
    assert all(engine.peek(n) is not NO_VALUE for n in NAMES)
    assert worker.process.poll() is None
    retries = max(r["retries"] for r in ledger.records() if r["id"] == warm_id)
    assert retries >= 1
    record(read_bound_ms=bound, hung_read_ms=round(hung_engine[0].latency_ms, 1),
           hung_cli_read_ms=round(max(json.loads(r.stdout)["latency_ms"] for r in hung), 1),
           dead_read_ms=round(max(json.loads(r.stdout)["latency_ms"] for r in dead), 1),
           first_hit_after_restart_s=round(refilled, 2), queued_warm_done_after_restart_s=round(warmed, 2),
           warm_retries=retries, lost=0, duplicates=ledger.duplicates())

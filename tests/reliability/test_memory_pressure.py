"""Issue 7, fault 7: memory pressure on one Redis that is both broker and cache.

``maxmemory`` is small and the policy ``volatile-lfu``: only keys with a TTL can
be evicted. Every cache key has one and no broker key does, so a flood of cache
fills evicts cache entries only, never a queued task. When the memory is full of
keys nothing may evict, publishing fails with one clear error and nothing is
half-queued; once memory is freed, every task queued before runs exactly once.
"""

from __future__ import annotations

import json
import time

import pytest

from cachewarm import service
from cachewarm.batching import chunked
from cachewarm.model import Summary
from cachewarm.settings import Settings
from tests.support.celery_procs import celery_app_for, start_worker
from tests.support.items import restaurant
from tests.support.tables import batch_put
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAXMEMORY = 12 * 1024 * 1024


def persistent_keys(client) -> dict[bytes, tuple[bytes, int]]:
    """Every key without a TTL (the broker's: queues, bindings), with its type and length."""
    out = {}
    for key in client.scan_iter(count=1000):
        if client.ttl(key) == -1:
            kind = client.type(key)
            size = {b"list": client.llen, b"set": client.scard, b"hash": client.hlen, b"zset": client.zcard}.get(
                kind, lambda k: 1)(key)
            out[key] = (kind, size)
    return out


def fill_to_the_brim(client) -> int:
    """Write keys without a TTL until Redis refuses even 10 bytes; return how many keys."""
    from redis.exceptions import OutOfMemoryError

    count = 0
    for size in (100_000, 10_000, 1000, 100, 10, 10):
        try:
            while True:
                client.set(f"ballast:{count}", b"b" * size)
                count += 1
        except OutOfMemoryError:
            continue
    return count


def fake_summary(name: str, size: int) -> Summary:
    restaurant_item = {"name": name, "cuisine": "Thai", "address": "1 Road", "version": 0}
    reviews = [{"id": f"{i:040d}", "username": "u", "rating": 5, "created_at": "2024-01-01T00:00:00",
                "review": "x" * (size // 5)} for i in range(5)]
    return Summary(restaurant_item, reviews)


def test_memory_pressure_evicts_cache_only_and_oom_publish_fails_clearly(redis_proc, rel_env, table, ledger,
                                                                        celery_proc, cli, record):
    server = redis_proc("--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "volatile-lfu")
    env = {**rel_env, "REDIS_URL": server.url}
    settings = Settings.from_env(env)
    redis_ = server.client()
    names = [f"Pressure {i:03d}" for i in range(200)]
    batch_put(table, [restaurant(n) for n in names])
    client = celery_app_for(env)
    ids = [client.send_task("cachewarm.warm_names", args=[chunk]).id for chunk in chunked(names, 5)]
    before = persistent_keys(redis_)
    assert before[b"warm"] == (b"list", len(ids))

    # 1. Flood the cache: about 5x maxmemory of summaries, through the warmer's and the readers' paths.
    engine = service.engine(settings)
    flooded, stored = 0, 0
    for batch in range(30):
        entries = [(f"Flood {batch:02d}-{i:03d}", fake_summary(f"F{i}", 20_000), 0.001) for i in range(100)]
        stored += engine.store_many(entries)
        flooded += len(entries)
        engine.fetch(names[batch])
    info = redis_.info()
    assert info["evicted_keys"] > 0
    assert info["used_memory"] <= MAXMEMORY * 1.1
    assert persistent_keys(redis_) == before, "a broker key was evicted or changed"
    ours = [k for k in redis_.scan_iter(match=f"{settings.key_prefix}:*", count=1000) if redis_.ttl(k) == -1]
    assert ours == [], f"cache keys without a TTL cannot be evicted: {ours[:5]}"

    # 2. Memory full of keys nothing may evict (a backlog, another tenant): publishing fails clearly.
    ballast = fill_to_the_brim(redis_)
    # Connections' buffers shrink for a while after the flood (clientsCron), giving back a few kB
    # that a small message could use: set the limit just below the data, so the state is "over".
    redis_.config_set("maxmemory", redis_.info("memory")["used_memory"] - 512 * 1024)
    queued_before = redis_.llen("warm")
    refused = cli("warm", names[0], env=env)
    assert refused.returncode == 1
    assert "out of memory" in refused.stderr and "not queued" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    with pytest.raises(Exception, match="maxmemory"):
        client.send_task("cachewarm.warm_names", args=[[names[0]]])
    assert redis_.llen("warm") == queued_before, "a refused publish left something half-queued"
    read = cli("get", names[1], "--json", env=env)  # readers still answer, from DynamoDB if need be
    assert read.returncode == 0 and json.loads(read.stdout)["found"] is True

    # 3. Memory freed: everything queued before the pressure runs, exactly once.
    for start in range(0, ballast, 500):
        redis_.unlink(*[f"ballast:{i}" for i in range(start, min(ballast, start + 500))])
    redis_.config_set("maxmemory", MAXMEMORY)
    accepted = cli("warm", names[0], "--json", env=env)
    assert accepted.returncode == 0, accepted.stderr
    ids += json.loads(accepted.stdout)["task_ids"]
    t0 = time.monotonic()
    start_worker(celery_proc, env)
    wait_until(lambda: ledger.done(ids), 90, "every task queued under pressure to run")
    assert ledger.missing(ids) == [] and ledger.duplicates(ids) == 0
    client.close()
    record(maxmemory_mb=MAXMEMORY // 2**20, flooded_entries=flooded, flood_mb=round(flooded * 0.02, 1),
           evicted_keys=info["evicted_keys"], queued_tasks=len(ids), lost=0, duplicates=ledger.duplicates(ids),
           oom_error=refused.stderr.strip()[:160], drained_s=round(time.monotonic() - t0, 2))

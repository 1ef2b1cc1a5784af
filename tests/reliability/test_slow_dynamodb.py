"""Issue 14, fault 1: single-flight holds at any DynamoDB latency, and when the lease holder dies.

A proxy in front of dynalite delays every Query by 3.5 s (throttling with SDK
retries stretches one logical read that long) and counts the requests that reach
it. Readers are separate processes with threads of their own, as web processes
would be, on a real redis-server. Before leases were renewed, 32 such gets made
32 reads, and a SIGKILLed holder made 9 gets cost 9 reads.
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from cachewarm import service
from cachewarm.settings import Settings
from devstack.dynamo_proxy import DynamoProxy
from tests.support.items import put_items, restaurant, review

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DELAY = 3.5


def _reader(env: dict, name: str, threads: int, ready, go, out) -> None:
    """``threads`` concurrent gets of ``name`` in this process, once ``go`` is set."""
    engine = service.engine(Settings.from_env(env))
    ready.wait(60)
    go.wait(60)

    def one() -> None:
        result = engine.fetch(name)
        out.put((result.source, result.cache, result.found, result.latency_ms))

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _spawn(ctx, env, name, threads, ready, go, out):
    process = ctx.Process(target=_reader, args=(env, name, threads, ready, go, out))
    process.start()
    return process


def test_32_concurrent_cold_gets_make_one_read_with_dynamodb_3_5_s_slow(stack_env, table, dynalite, record):
    put_items(table, [restaurant("Slow"), review("Slow", "s" * 40)])
    settings = Settings.from_env(stack_env)
    assert settings.lease_ms < DELAY * 1000  # the read outlives the lease: only renewal keeps it
    with DynamoProxy(dynalite.url) as proxy:
        proxy.faults.delay["Query"] = DELAY
        env = {**stack_env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url}
        ctx = multiprocessing.get_context("spawn")
        ready, go, out = ctx.Barrier(4 + 1), ctx.Event(), ctx.Queue()
        processes = [_spawn(ctx, env, "Slow", 8, ready, go, out) for _ in range(4)]
        ready.wait(120)
        started = time.monotonic()
        go.set()
        results = [out.get(timeout=120) for _ in range(32)]
        elapsed = time.monotonic() - started
        for process in processes:
            process.join(30)
    assert all(found for _, _, found, _ in results)
    assert proxy.counts["Query"] == 1, proxy.counts
    assert sorted(cache for _, cache, _, _ in results).count("miss") == 1
    assert sum(1 for source, _, _, _ in results if source == "db") == 1
    assert engine_counter(settings, "wait_timeouts") == 0
    record(gets=32, processes=4, dynamodb_delay_s=DELAY, dynamodb_reads=proxy.counts["Query"],
           slowest_get_s=round(max(ms for *_, ms in results) / 1000, 2), all_done_s=round(elapsed, 2))


def test_nine_gets_with_the_holder_sigkilled_mid_read_make_at_most_two_reads(stack_env, table, dynalite, record):
    put_items(table, [restaurant("Orphan"), review("Orphan", "o" * 40)])
    settings = Settings.from_env(stack_env)
    with DynamoProxy(dynalite.url) as proxy:
        proxy.faults.delay["Query"] = DELAY
        env = {**stack_env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url}
        ctx = multiprocessing.get_context("spawn")
        ready, out = ctx.Barrier(9 + 1), ctx.Queue()
        holder_go, waiters_go = ctx.Event(), ctx.Event()
        holder = _spawn(ctx, env, "Orphan", 1, ready, holder_go, out)
        waiters = [_spawn(ctx, env, "Orphan", 1, ready, waiters_go, out) for _ in range(8)]
        ready.wait(120)
        holder_go.set()
        assert proxy.entered["Query"].wait(30)  # the holder has the lease and its read is in flight
        waiters_go.set()
        time.sleep(1.0)  # the waiters are polling the holder's lease
        holder.kill()
        killed = time.monotonic()
        holder.join(10)
        results = [out.get(timeout=120) for _ in range(8)]
        recovered = time.monotonic() - killed
        for waiter in waiters:
            waiter.join(30)
    assert all(found for _, _, found, _ in results)
    assert proxy.counts["Query"] <= 2, proxy.counts
    # Exactly one waiter took the lapsed lease over; the others waited for its value.
    assert sum(1 for source, _, _, _ in results if source == "db") == 1
    assert engine_counter(settings, "wait_timeouts") == 0
    # The takeover waited for the dead holder's lease to lapse (one lifetime), then one slow read.
    assert recovered < settings.lease_ms / 1000 + DELAY + 5
    record(gets=9, dynamodb_delay_s=DELAY, lease_ms=settings.lease_ms, dynamodb_reads=proxy.counts["Query"],
           all_served_after_kill_s=round(recovered, 2))


def engine_counter(settings: Settings, name: str) -> int:
    """A cache counter over the last minute, as ``cachewarm stats`` reads it."""
    return int(service.engine(settings).metrics.window(60).get(name, 0))

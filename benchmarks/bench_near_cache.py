"""The near cache (CACHE_LOCAL_MAX_ITEMS): its hit against a raw redis-py GET, and how fast a write reaches it.

1. Hit: ``engine.fetch`` served by the near cache, interleaved request by
   request with a raw redis-py GET (+ JSON decode) of the same key on the same
   server: the round trip the near cache saves.
2. Visibility: a spawned writer process invalidates the name (the write path's
   invalidation) at a recorded moment; this process's near cache holds the
   name, and a thread watches for the entry to go. The lag is the time from
   the writer's invalidation returning to the entry leaving the near cache:
   what a reader in another process could see stale. Both processes read one
   clock (``time.monotonic`` is system-wide on Linux).

Zero stale reads while the tracking connection is dropped mid-writes is a test,
not a figure: tests/integration/test_near_cache.py.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import replace

from benchmarks.common import BenchStack, Figure
from cachewarm import service
from cachewarm.percentiles import percentile

HIT_GOAL = 20.0  # the near-cache hit is at least this many times faster than a raw GET (p50)
VISIBLE_GOAL_MS = 5.0  # p99 of a write reaching another process's near cache, on loopback


def _invalidator(env_settings, name: str, rounds: int, go, ready, done_at) -> None:
    """Invalidate ``name`` ``rounds`` times, each when told; publish when each invalidation returned."""
    engine = service.engine(env_settings)
    for _ in range(rounds):
        go.wait(30)
        go.clear()
        engine.invalidate(name)
        done_at.value = time.monotonic()
        ready.set()


def run(stack: BenchStack, names: list[str], *, requests: int = 20_000, rounds: int = 200) -> list[Figure]:
    """Measure the near-cache hit and cross-process write visibility."""
    settings = replace(stack.settings, local_max_items=10_000, key_prefix=stack.settings.key_prefix + "-near")
    service.reset()
    engine = service.engine(settings)
    name = names[0]
    engine.fetch(name)  # fill; the next read keeps it in the near cache
    deadline = time.monotonic() + 10
    while not (engine.near and engine.near.live) and time.monotonic() < deadline:
        time.sleep(0.01)
    key = engine.keys.summary(name)
    raw_client = service.engine(stack.settings).redis
    raw, near = [], []
    for i in range(requests + 2000):
        t0 = time.perf_counter()
        json.loads(raw_client.get(key))
        t1 = time.perf_counter()
        engine.fetch(name)
        t2 = time.perf_counter()
        if i >= 2000:
            raw.append((t1 - t0) * 1000)
            near.append((t2 - t1) * 1000)
    raw_p50, near_p50 = percentile(raw, 0.5), percentile(near, 0.5)
    speedup = raw_p50 / near_p50

    ctx = multiprocessing.get_context("spawn")
    go, ready, done_at = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
    writer = ctx.Process(target=_invalidator, args=(replace(settings, local_max_items=0), name, rounds, go, ready,
                                                    done_at))
    writer.start()
    lags = []
    try:
        for _ in range(rounds):
            engine.fetch(name)  # refill (a miss, after the last round's invalidation), then keep it locally
            while engine.near is not None and engine.near.get(key) is None:
                engine.fetch(name)
            go.set()
            give_up = time.monotonic() + 5
            while engine.near.get(key) is not None and time.monotonic() < give_up:
                # Poll every 0.1 ms, releasing the GIL: a busy-spinning thread would hold it for Python's
                # 5 ms switch interval and delay the tracking thread that applies the push.
                time.sleep(0.0001)
            gone = time.monotonic()
            ready.wait(30)
            ready.clear()
            lags.append(max(0.0, (gone - done_at.value) * 1000))
    finally:
        writer.join(30)
    service.reset()
    visible_p99 = percentile(lags, 0.99)
    return [
        Figure("near_cache_hit_speedup_vs_raw_get", round(speedup, 1), "x faster than a raw GET (p50)",
               f">= {HIT_GOAL:.0f}x", round(raw_p50, 4), speedup >= HIT_GOAL,
               {"near_p50_ms": round(near_p50, 5), "near_p99_ms": round(percentile(near, 0.99), 5),
                "raw_p50_ms": round(raw_p50, 4), "raw_p99_ms": round(percentile(raw, 0.99), 4),
                "requests": requests}),
        Figure("near_cache_write_visible_p99", round(visible_p99, 3), "ms", f"<= {VISIBLE_GOAL_MS:.0f} ms", None,
               visible_p99 <= VISIBLE_GOAL_MS,
               {"p50_ms": round(percentile(lags, 0.5), 3), "max_ms": round(max(lags), 3), "rounds": rounds,
                "what": "from another process's invalidation returning to the entry leaving this near cache"}),
    ]

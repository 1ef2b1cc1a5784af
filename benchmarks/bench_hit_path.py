"""Cache-hit path vs a raw redis-py GET (+ JSON decode) of the same payload: the physical limit.

Both are measured interleaved, request by request, on one connection to the
same redis-server, so noise from the shared machine hits both alike.
"""

from __future__ import annotations

import json
import time

from benchmarks.common import BenchStack, Figure
from cachewarm import service
from cachewarm.percentiles import percentile

GOAL_RATIO = 1.2


def run(stack: BenchStack, names: list[str], *, requests: int = 20000) -> list[Figure]:
    """Measure p50/p99 of ``engine.fetch`` hits against ``json.loads(redis.get(key))``."""
    engine = service.engine(stack.settings)
    name = names[0]
    engine.fetch(name)  # fill
    key = engine.keys.summary(name)
    client = engine.redis
    payload = len(client.get(key))
    raw, ours = [], []
    for i in range(requests + 2000):
        t0 = time.perf_counter()
        json.loads(client.get(key))
        t1 = time.perf_counter()
        result = engine.fetch(name)
        t2 = time.perf_counter()
        if i >= 2000:  # warm-up discarded
            raw.append((t1 - t0) * 1000)
            ours.append((t2 - t1) * 1000)
        assert result.cache == "hit"
    raw_p50, ours_p50 = percentile(raw, 0.5), percentile(ours, 0.5)
    ratio = ours_p50 / raw_p50
    return [
        Figure("hit_path_p50_vs_raw_get", round(ratio, 3), "x raw GET p50", f"<= {GOAL_RATIO}x",
               round(raw_p50, 4), ratio <= GOAL_RATIO,
               {"ours_p50_ms": round(ours_p50, 4), "raw_p50_ms": round(raw_p50, 4),
                "ours_p99_ms": round(percentile(ours, 0.99), 4), "raw_p99_ms": round(percentile(raw, 0.99), 4),
                "payload_bytes": payload, "requests": requests,
                "includes": "read tallies for hot keys and hit ratio (flushed on a due read's pipeline)"}),
    ]

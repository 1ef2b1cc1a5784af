"""Cache vs DynamoDB: the lazy-loading benchmark's own code (the run_benchmark task's core)."""

from __future__ import annotations

import random

from benchmarks.common import BenchStack, Figure
from cachewarm import service
from cachewarm.benchmark import run_benchmark

GOAL_SPEEDUP = 10.0  # the original demo measured about 13x on AWS


def run(stack: BenchStack, names: list[str], *, sample: int = 300) -> list[Figure]:
    """Direct DynamoDB summary reads vs cache hits for the same sampled names."""
    settings = stack.settings
    result = run_benchmark(service.engine(settings), service.repository(settings), settings,
                           sample=min(sample, len(names)), rng=random.Random(11))
    db, hit, miss = result["db_ms"], result["hit_ms"], result["miss_ms"]
    return [
        Figure("cache_vs_dynamodb_speedup_p50", result["speedup_p50"], "x", f">= {GOAL_SPEEDUP}x",
               db["p50"], result["speedup_p50"] >= GOAL_SPEEDUP,
               {"db_ms": db, "hit_ms": hit, "miss_ms": miss, "speedup_p99": result["speedup_p99"],
                "sample": result["sample"], "item_count": result["environment"]["item_count"]}),
        Figure("cache_miss_overhead_p50", round(miss["p50"] / db["p50"], 3), "x DynamoDB p50",
               "<= 1.3x (a miss costs the query plus one fill)", db["p50"], miss["p50"] / db["p50"] <= 1.3,
               {"miss_p50_ms": miss["p50"], "db_p50_ms": db["p50"]}),
    ]

"""DynamoDB reads under a stampede: N concurrent misses on one cold name, ours vs naive cache-aside.

A counting proxy in front of dynalite answers slowly (like a loaded table), so
the naive readers really overlap.
"""

from __future__ import annotations

import json
import threading

from benchmarks.common import BenchStack, Figure
from cachewarm import service
from devstack.dynamo_proxy import DynamoProxy

READERS = 32
DELAY = 0.05


def _stampede(target, name: str) -> None:
    barrier = threading.Barrier(READERS)

    def one():
        barrier.wait()
        target(name)

    threads = [threading.Thread(target=one) for _ in range(READERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run(stack: BenchStack, names: list[str]) -> list[Figure]:
    """Count Query requests reaching DynamoDB for one stampede each way."""
    from dataclasses import replace

    from cachewarm.cache import CacheAside
    from cachewarm.clients import dynamodb_client
    from cachewarm.repository import RestaurantRepository

    with DynamoProxy(stack.dynalite.url) as proxy:
        proxy.faults.delay["Query"] = DELAY
        settings = replace(stack.settings, dynamodb_endpoint=proxy.url)
        repo = RestaurantRepository(dynamodb_client(settings), settings.table_name)
        engine = CacheAside(service.engine(stack.settings).redis, repo, settings)
        client = engine.redis

        def naive(name: str) -> None:
            key = f"naive:{name}"
            if client.get(key) is None:
                summary = repo.get_summary(name)
                client.set(key, json.dumps(summary.to_dict() if summary else None), ex=60)

        before = proxy.counts["Query"]
        _stampede(naive, names[1])
        naive_reads = proxy.counts["Query"] - before
        before = proxy.counts["Query"]
        _stampede(engine.fetch, names[2])
        our_reads = proxy.counts["Query"] - before
    return [
        Figure("dynamodb_reads_under_stampede", our_reads, "Query requests", "== 1 (one fill)", naive_reads,
               our_reads == 1, {"readers": READERS, "dynamodb_delay_s": DELAY, "naive_cache_aside": naive_reads}),
    ]

"""The exporter's collector on fakeredis with every source filled, so that every metric it can serve is served.

Shared by the collector's unit tests and the dashboard/alert-rule check (tests/unit/test_dashboards.py).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import fakeredis

from cachewarm.exporter import CacheCollector
from cachewarm.keys import KeySchema
from cachewarm.metrics import Metrics

KEYS = KeySchema("cw")
QUEUES = ("warm", "maintenance")


class InfoRedis(fakeredis.FakeRedis):
    """fakeredis with the ``INFO memory`` / ``INFO stats`` fields the collector reads (fakeredis has no INFO)."""

    INFO: ClassVar[dict[str, dict[str, Any]]] = {
        "memory": {"used_memory": 2_400_000, "used_memory_human": "2.29M", "maxmemory": 268_435_456,
                   "maxmemory_human": "256.00M", "maxmemory_policy": "volatile-lfu"},
        "stats": {"evicted_keys": 3, "expired_keys": 40},
    }

    def info(self, section: Any = None, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(self.INFO.get(section or "", {}))


def filled(server: fakeredis.FakeServer | None = None) -> tuple[CacheCollector, fakeredis.FakeRedis]:
    """A collector whose cache and broker hold a little of everything; returns (collector, cache client)."""
    server = server or fakeredis.FakeServer()
    cache = InfoRedis(server=server)
    metrics = Metrics(cache, KEYS)
    metrics.incr_many({"reads": 10, "misses": 2, "fills": 3, "fill_us": 4000, "waits": 1, "fill_slot_waits": 1,
                       "wait_timeouts": 1, "refused_lease": 1, "refused_floor": 1, "refused_hold": 1,
                       "invalidations": 2, "early_refreshes": 1, "l1_hits": 4, "l1_invalidations": 1,
                       "feed_records": 5, "feed_ignored": 1, "feed_invalidated": 4, "audit_checked": 20,
                       "audit_stale": 1})
    cache.set(KEYS.summary("Thai Spot"), "x", ex=60)
    cache.lpush(KEYS.stats("feed:lag"), "120.5", "80", "300")
    cache.expire(KEYS.stats("feed:lag"), 60)
    broker = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    broker.rpush("warm", "a", "b")
    broker.rpush("warm\x06\x169", "c")
    collector = CacheCollector(cache, KEYS, broker=broker, queues=QUEUES, clock=time.time)
    return collector, cache


def samples(collector: CacheCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in collector.collect()
            for s in family.samples}


def served_names() -> set[str]:
    """Every sample name the collector serves (``*_total`` for counters), and every family name."""
    collector, _ = filled()
    names: set[str] = set()
    for family in collector.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names

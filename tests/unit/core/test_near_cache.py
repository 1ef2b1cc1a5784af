"""The near cache's bookkeeping (cachewarm/near_cache.py), without a server.

The tracking connection itself is exercised on real redis-server and Valkey in
tests/integration/test_near_cache.py; here the pushes are delivered by hand.
"""

import time

import fakeredis

from cachewarm.entries import CacheEntry
from cachewarm.keys import KeySchema
from cachewarm.metrics import Metrics
from cachewarm.model import Summary
from cachewarm.near_cache import FALLBACK, FALLBACK_TTL_SECONDS, NearCache


def entry(name="A", ttl=60.0):
    return CacheEntry(Summary({"name": name}, []), 0, 0.01, time.time() + ttl)


def near(max_items=3, *, cluster=False):
    client = fakeredis.FakeRedis()
    cache = NearCache(client, "cw:v2:", max_items, Metrics(client, KeySchema()), cluster=cluster)
    cache._pid = __import__("os").getpid()  # no tracking thread: the test plays the server
    cache._set_live(True)
    return cache


def test_a_value_read_before_an_invalidation_is_not_kept():
    cache = near()
    ticket = cache.ticket()
    cache.invalidate(["k"])  # the push arrived while the GET was in flight
    cache.put("k", entry(), ticket)
    assert cache.get("k") is None
    cache.put("k", entry(), cache.ticket())
    assert cache.get("k") is not None


def test_an_invalidation_of_another_key_does_not_refuse_a_store():
    cache = near()
    ticket = cache.ticket()
    cache.invalidate(["other"])
    cache.put("k", entry(), ticket)
    assert cache.get("k") is not None


def test_a_flush_push_or_a_lost_connection_empties_it_and_refuses_older_reads():
    cache = near()
    cache.put("k", entry(), cache.ticket())
    ticket = cache.ticket()
    cache.invalidate(None)  # the server's "flush everything"
    assert cache.get("k") is None
    cache.put("k", entry(), ticket)
    assert cache.get("k") is None
    cache.put("k", entry(), cache.ticket())
    ticket = cache.ticket()
    cache._set_live(False)  # the tracking connection failed
    assert cache.get("k") is None and len(cache) == 0
    cache._set_live(True)  # and came back: whatever was read before may be stale
    cache.put("k", entry(), ticket)
    assert cache.get("k") is None


def test_least_recently_used_entries_go_first_and_entries_expire_with_their_value():
    cache = near(max_items=2)
    for key in ("a", "b"):
        cache.put(key, entry(), cache.ticket())
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", entry(), cache.ticket())
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    cache.put("short", entry(ttl=0.05), cache.ticket())
    time.sleep(0.08)
    assert cache.get("short") is None
    cache.put("expired", entry(ttl=-1), cache.ticket())
    assert cache.get("expired") is None


def test_forgotten_invalidations_raise_the_floor():
    cache = near()
    ticket = cache.ticket()
    cache.invalidate([f"k{i}" for i in range(10_001)])  # more keys than it remembers
    cache.put("k0", entry(), ticket)  # k0's invalidation was forgotten, the floor still refuses it
    assert cache.get("k0") is None


def test_on_a_cluster_entries_live_at_most_the_fallback_ttl():
    cache = near(cluster=True)
    assert cache.mode == FALLBACK and cache.live
    cache.put("k", entry(ttl=600), cache.ticket())
    assert cache._entries["k"][1] - time.monotonic() <= FALLBACK_TTL_SECONDS


def test_hits_and_invalidations_are_counted():
    cache = near()
    cache.put("k", entry(), cache.ticket())
    cache.get("k")
    cache.invalidate(["k", "j"])
    assert cache.take_hits() == 1 and cache.take_hits() == 0  # the engine adds them when it flushes
    assert cache.metrics.drain() == {"l1_invalidations": 2}

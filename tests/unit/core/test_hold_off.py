"""The change feed's hold-off: after a feed invalidation, reads are served from DynamoDB and not stored."""

from __future__ import annotations

import time

from cachewarm.cache import NO_VALUE, CacheAside
from tests.support.cache_fakes import FakeRepo, make, summary


def held_engine(fake_server, repo: FakeRepo, **overrides) -> CacheAside:
    engine = make(fake_server, repo, **overrides)
    engine.fetch("A")  # cached
    engine.invalidate_many(["A"], hold_off_ms=300)
    return engine


def test_reads_during_the_hold_off_come_from_dynamodb_and_store_nothing(fake_server):
    repo = FakeRepo({"A": summary("A", text="old")})
    engine = held_engine(fake_server, repo)
    repo.data["A"] = summary("A", text="lagging index")
    results = [engine.fetch("A") for _ in range(3)]
    assert [(r.source, r.cache) for r in results] == [("db", "miss")] * 3
    assert engine.peek("A") is NO_VALUE
    assert repo.reads == 1 + 3
    engine.flush()  # the read path's counters are tallied in the process until flushed
    counters = engine.metrics.window(120)
    assert counters["refused_hold"] == 3 and counters["misses"] == 1 + 3


def test_after_the_hold_off_the_next_read_fills_again(fake_server):
    repo = FakeRepo({"A": summary("A", text="old")})
    engine = held_engine(fake_server, repo)
    repo.data["A"] = summary("A", text="new")
    time.sleep(0.35)
    assert engine.fetch("A").cache == "miss"
    assert engine.peek("A").summary.reviews[0]["review"] == "new"
    assert engine.fetch("A").cache == "hit"


def test_a_warm_skips_held_names_and_stores_the_others(fake_server):
    repo = FakeRepo({"A": summary("A"), "B": summary("B")})
    engine = held_engine(fake_server, repo)
    stored = engine.store_many([("A", summary("A", text="stale"), 0.001), ("B", summary("B"), 0.001)])
    assert stored == 1
    assert engine.peek("A") is NO_VALUE and engine.peek("B") is not NO_VALUE


def test_an_early_refresh_that_took_its_lease_during_the_hold_off_is_refused(fake_server):
    repo = FakeRepo({"A": summary("A")})
    engine = make(fake_server, repo)
    engine.invalidate_many(["A"], hold_off_ms=5000)
    token = "t"
    engine.redis.set(engine.keys.lease("A"), token, px=3000)  # as _refresh_early does, after the hold began
    result = engine._fill_with_lease("A", token, time.perf_counter(), "refreshed")
    assert result.source == "db" and engine.peek("A") is NO_VALUE
    engine.flush()
    assert engine.metrics.window(120)["refused_hold"] == 1


def test_own_writes_and_bulk_loads_start_no_hold_off(fake_server):
    repo = FakeRepo({"A": summary("A"), "B": summary("B")})
    engine = make(fake_server, repo)
    engine.invalidate("A", min_version=1)
    engine.invalidate_many(["B"])
    assert not engine.redis.exists(engine.keys.hold("A"), engine.keys.hold("B"))

"""The cache-aside engine on fakeredis with an in-memory repository."""

import threading
import time

import fakeredis
import redis

from cachewarm.cache import NO_VALUE, CacheAside, CacheEntry, xfetch_due
from cachewarm.settings import Settings
from tests.support.cache_fakes import FakeRepo, make, summary


def test_miss_then_hit(fake_server):
    repo = FakeRepo({"A": summary("A")})
    engine = make(fake_server, repo)
    first, second = engine.fetch("A"), engine.fetch("A")
    assert (first.source, first.cache) == ("db", "miss")
    assert (second.source, second.cache) == ("cache", "hit")
    assert second.summary == first.summary
    assert repo.reads == 1
    assert first.latency_ms > 0 and second.latency_ms > 0


def test_ttl_has_jitter_within_bounds(fake_server):
    repo = FakeRepo({f"n{i}": summary(f"n{i}") for i in range(40)})
    engine = make(fake_server, repo, cache_ttl=1000, cache_ttl_jitter=0.1)
    ttls = set()
    for i in range(40):
        engine.fetch(f"n{i}")
        ttls.add(engine.redis.pttl(engine.keys.summary(f"n{i}")))
    assert all(1_000_000 - 1000 <= t <= 1_100_000 for t in ttls)
    assert len(ttls) > 10


def test_not_found_is_cached_briefly(fake_server):
    repo = FakeRepo()
    engine = make(fake_server, repo, negative_ttl=30)
    first, second = engine.fetch("Ghost"), engine.fetch("Ghost")
    assert not first.found and not second.found
    assert second.source == "cache"
    assert repo.reads == 1
    assert 0 < engine.redis.pttl(engine.keys.summary("Ghost")) <= 30_000
    assert engine.peek("Ghost").summary is None
    assert engine.peek("Other") is NO_VALUE


def test_cache_down_falls_back_to_db(fake_server):
    repo = FakeRepo({"A": summary("A")})
    engine = make(fake_server, repo)
    fake_server.connected = False
    result = engine.fetch("A")
    assert (result.source, result.cache, result.found) == ("db", "unavailable", True)
    # The breaker skips the cache for a while instead of paying a timeout per read.
    fake_server.connected = True
    assert engine.fetch("A").cache == "unavailable"


def test_every_key_has_a_ttl(fake_server):
    repo = FakeRepo({"A": summary("A")})
    engine = make(fake_server, repo)
    engine.fetch("A")
    engine.fetch("missing")
    engine.invalidate("A", min_version=3)
    engine.hot.top(5, time.time())
    for key in engine.redis.scan_iter(match="cw:*"):
        assert engine.redis.pttl(key) > 0, key


def test_single_flight_across_threads(fake_server):
    repo = FakeRepo({"A": summary("A")})
    repo.gate = threading.Event()
    engine = make(fake_server, repo)
    results = []
    threads = [threading.Thread(target=lambda: results.append(engine.fetch("A"))) for _ in range(8)]
    for t in threads:
        t.start()
    assert repo.entered.wait(5)
    time.sleep(0.1)
    repo.gate.set()
    for t in threads:
        t.join()
    assert repo.reads == 1
    assert sorted(r.cache for r in results).count("miss") == 1
    assert all(r.found for r in results)


def test_stale_set_is_refused_after_invalidation(fake_server):
    """A reader that loaded old data before a write must not cache it after the write."""
    repo = FakeRepo({"A": summary("A", version=0, text="old")})
    repo.gate = threading.Event()
    slow = make(fake_server, repo)
    out = []
    reader = threading.Thread(target=lambda: out.append(slow.fetch("A")))
    reader.start()
    assert repo.entered.wait(5)  # the slow reader holds the old data
    repo.data["A"] = summary("A", version=1, text="new")  # the writer's transaction
    writer = make(fake_server, FakeRepo())
    writer.invalidate("A", min_version=1)  # delete on write
    repo.gate.set()
    reader.join()
    assert out[0].summary.reviews[0]["review"] == "old"  # the reader itself saw the old data...
    assert slow.peek("A") is NO_VALUE  # ...but did not cache it
    repo.gate = None
    fresh = make(fake_server, repo).fetch("A")
    assert fresh.source == "db" and fresh.summary.reviews[0]["review"] == "new"


def test_floor_refuses_an_old_version_read_after_invalidation(fake_server):
    # An eventually consistent index may still return version 0 after the write.
    repo = FakeRepo({"A": summary("A", version=0)})
    engine = make(fake_server, repo)
    engine.invalidate("A", min_version=1)
    result = engine.fetch("A")
    assert result.source == "db"
    assert engine.peek("A") is NO_VALUE


def test_store_many_respects_floor_and_counts(fake_server):
    engine = make(fake_server, FakeRepo())
    engine.invalidate("B", min_version=2)
    stored = engine.store_many([("A", summary("A"), 0.01), ("B", summary("B", version=1), 0.01),
                                ("C", None, 0.01)])
    assert stored == 2
    assert engine.peek("A").summary.name == "A"
    assert engine.peek("B") is NO_VALUE
    assert engine.peek("C").summary is None


def test_xfetch_probability_rises_near_expiry():
    entry = CacheEntry(summary=None, version=0, delta=0.1, expires_at=100.0)
    far = sum(xfetch_due(entry, now=50.0, beta=1.0, rand=lambda r=r: r / 100) for r in range(1, 100))
    near = sum(xfetch_due(entry, now=99.95, beta=1.0, rand=lambda r=r: r / 100) for r in range(1, 100))
    assert far == 0
    assert near > 30


def test_hot_keys_rank_and_decay(fake_server):
    repo = FakeRepo({n: summary(n) for n in "ABC"})
    now = [1_000_000.0]
    engine = CacheAside(fakeredis.FakeRedis(server=fake_server), repo, Settings(), clock=lambda: now[0])
    for _ in range(5):
        engine.fetch("A")
    engine.flush()
    now[0] += 600  # ten minutes later: two half-lives
    for _ in range(3):
        engine.fetch("B")
    engine.fetch("C")
    engine.flush()
    ranked = [name for name, _ in engine.hot.top(3, now[0])]
    assert engine.metrics.window(3600, now[0])["reads"] == 9
    assert ranked == ["B", "A", "C"]


def test_read_tallies_ride_on_reads_without_extra_round_trips(fake_server):
    repo = FakeRepo({"A": summary("A")})
    engine = make(fake_server, repo)
    engine.fetch("A")  # miss: the first read of a process flushes its tally at once
    calls = []
    original = engine.redis.execute_command
    engine.redis.execute_command = lambda *a, **k: calls.append(a[0]) or original(*a, **k)
    for _ in range(20):
        assert engine.fetch("A").cache == "hit"
    assert calls == ["GET"] * 20  # within the flush interval: one bare GET per hit
    engine.flush()
    assert engine.metrics.window(60)["reads"] == 21
    assert engine.hot.top(1, time.time())[0] == ("A", 21.0)


def test_redis_errors_other_than_transport_do_not_escape(fake_server):
    class Broken(fakeredis.FakeRedis):
        def pipeline(self, *a, **k):
            raise redis.exceptions.ResponseError("OOM command not allowed")

    repo = FakeRepo({"A": summary("A")})
    engine = CacheAside(Broken(server=fake_server), repo, Settings())
    assert engine.fetch("A").cache == "unavailable"


def test_invalidate_many_is_one_round_trip(fake_server):
    repo = FakeRepo({n: summary(n) for n in "ABC"})
    engine = make(fake_server, repo)
    for name in "ABC":
        engine.fetch(name)
    engine.redis.ping()
    sent = []
    conn_class = engine.redis.connection_pool.connection_class
    original = conn_class.send_packed_command
    conn_class.send_packed_command = lambda self, cmd, check_health=True: sent.append(1) or original(
        self, cmd, check_health)
    try:
        assert engine.invalidate_many(["A", "B", "Missing", "A"]) == 2
    finally:
        conn_class.send_packed_command = original
    assert engine.peek("A") is NO_VALUE and engine.peek("B") is NO_VALUE and engine.peek("C") is not NO_VALUE
    assert len(sent) == 3  # first use: the pipeline, SCRIPT LOAD, the pipeline again
    sent.clear()
    conn_class.send_packed_command = lambda self, cmd, check_health=True: sent.append(1) or original(
        self, cmd, check_health)
    try:
        assert engine.invalidate_many(["C"]) == 1
    finally:
        conn_class.send_packed_command = original
    assert len(sent) == 1  # then one round trip, counters included
    assert engine.metrics.window(60)["invalidations"] == 4


def test_a_waiter_polls_within_the_backoff_bounds_and_gives_up_at_its_deadline(fake_server, monkeypatch):
    from cachewarm.cache import LEASE_POLL

    repo = FakeRepo({"A": summary("A")})
    # A read budget of 0.2 s (one attempt, 0.1 s connect + 0.1 s read timeout), and a live lease that
    # outlasts it: a holder stuck longer than any DynamoDB read can take.
    engine = make(fake_server, repo, dynamodb_timeout=0.1, dynamodb_max_attempts=1)
    assert engine.read_budget == 0.2
    engine.redis.set(engine.keys.lease("A"), "another-filler", px=10_000)
    slept = []
    real_sleep = time.sleep
    caller = threading.current_thread()  # the lease keepers' threads sleep too
    monkeypatch.setattr("cachewarm.cache.time.sleep",
                        lambda s: (threading.current_thread() is caller and slept.append(s), real_sleep(s)))
    result = engine.fetch("A")
    assert (result.source, result.cache) == ("db", "waited")
    assert len(slept) >= 8
    assert all(0 <= s <= LEASE_POLL.ceiling(n) for n, s in enumerate(slept, start=1))
    assert 200 <= result.latency_ms < 200 + 100  # the deadline, plus at most one poll and the read
    assert engine.peek("A") is NO_VALUE  # a waiter that gave up does not fill

"""Renewed fill leases and the fill cap (cachewarm/leases.py, the ACQUIRE/RENEW/RELEASE scripts), on fakeredis.

The same properties are proven against real processes, a real redis-server and a
slow DynamoDB in tests/reliability/test_slow_dynamodb.py.
"""

import threading
import time

import pytest

from cachewarm.leases import read_budget_seconds
from cachewarm.settings import Settings
from tests.support.cache_fakes import FakeRepo, make, summary


class SlowRepo(FakeRepo):
    """Every read takes ``seconds``; tracks the most reads in flight at once."""

    def __init__(self, data, seconds):
        super().__init__(data)
        self.seconds = seconds
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        self.fail = False

    def get_summary(self, name):
        with self.lock:
            self.reads += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.seconds)
            if self.fail:
                raise RuntimeError("DynamoDB said no")
            return self.data.get(name)
        finally:
            with self.lock:
                self.in_flight -= 1


def concurrently(count, call):
    results, errors = [None] * count, []

    def run(i):
        try:
            results[i] = call(i)
        except Exception as exc:  # collected, asserted by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results, errors


def test_the_read_budget_is_botocores_worst_case_for_one_request():
    assert read_budget_seconds(Settings()) == 6 * (5.0 + 5.0) + (1 + 2 + 4 + 8 + 16)  # 91 s
    assert read_budget_seconds(Settings(dynamodb_max_attempts=1, dynamodb_timeout=0.5)) == 1.0
    # botocore caps one backoff at 20 s
    budget = read_budget_seconds(Settings(dynamodb_max_attempts=8, dynamodb_timeout=1.0))
    assert budget == 8 * 2 + (1 + 2 + 4 + 8 + 16 + 20 + 20)


def test_a_read_slower_than_the_lease_still_makes_one_dynamodb_read(fake_server):
    # The lease lives 250 ms between renewals (renewed every 83 ms, so a busy machine's stalls are survived);
    # the read takes 1 s.
    repo = SlowRepo({"A": summary("A")}, seconds=1.0)
    engine = make(fake_server, repo, lease_ms=250)
    results, errors = concurrently(12, lambda _: engine.fetch("A"))
    assert not errors
    assert repo.reads == 1
    assert sorted(r.cache for r in results).count("miss") == 1
    assert {r.source for r in results if r.cache != "miss"} == {"cache"}
    assert engine.leases.renewals >= 3  # renewed several times while the read was in flight


def test_without_renewal_a_slow_read_would_be_repeated(fake_server, monkeypatch):
    # The control: the same race with renewal switched off makes more reads, so the test above can fail.
    repo = SlowRepo({"A": summary("A")}, seconds=0.6)
    engine = make(fake_server, repo, lease_ms=90)
    monkeypatch.setattr(engine.leases, "hold", lambda *a, **k: None)
    concurrently(12, lambda _: engine.fetch("A"))
    assert repo.reads > 1


def test_a_failed_read_releases_the_lease_at_once(fake_server):
    repo = SlowRepo({"A": summary("A")}, seconds=0.05)
    repo.fail = True
    engine = make(fake_server, repo, lease_ms=10_000)
    with pytest.raises(RuntimeError):
        engine.fetch("A")
    assert engine.redis.exists(engine.keys.lease("A")) == 0
    assert engine.redis.zcard(engine.keys.fill_slots()) == 0
    repo.fail = False
    started = time.perf_counter()
    assert engine.fetch("A").cache == "miss"  # not a 10 s wait for a lease nobody holds
    assert time.perf_counter() - started < 1.0


def test_a_dead_holders_lease_lapses_and_exactly_one_waiter_takes_over(fake_server):
    repo = SlowRepo({"A": summary("A")}, seconds=0.1)
    engine = make(fake_server, repo, lease_ms=1500)  # the taker-over's lease: long enough for a busy machine
    # A holder in another process that died: its 300 ms lease is never renewed.
    engine.redis.set(engine.keys.lease("A"), "dead-holder", px=300)
    results, errors = concurrently(8, lambda _: engine.fetch("A"))
    assert not errors
    assert repo.reads == 1
    assert [r.cache for r in results].count("miss") == 1
    assert all(r.latency_ms >= 200 for r in results)  # everyone waited for the lapse, nobody gave up


def test_the_fill_cap_bounds_reads_in_flight_across_names(fake_server):
    names = [f"R{i}" for i in range(10)]
    repo = SlowRepo({n: summary(n) for n in names}, seconds=0.1)
    engine = make(fake_server, repo, max_fills=3)
    results, errors = concurrently(10, lambda i: engine.fetch(names[i]))
    assert not errors
    assert repo.reads == 10 and repo.most_in_flight <= 3
    assert all(r.found for r in results)
    engine.flush()
    assert engine.metrics.window(60)["fill_slot_waits"] >= 1
    assert engine.redis.zcard(engine.keys.fill_slots()) == 0  # every slot given back by its fill
    # control: without the cap all ten read at once
    uncapped = SlowRepo({n: summary(n) for n in names}, seconds=0.1)
    engine = make(fake_server, uncapped, max_fills=0, key_prefix="nocap")
    concurrently(10, lambda i: engine.fetch(names[i]))
    assert uncapped.most_in_flight > 3


def test_a_dead_holders_fill_slot_lapses(fake_server):
    repo = SlowRepo({"A": summary("A")}, seconds=0.0)
    engine = make(fake_server, repo, max_fills=1, lease_ms=200)
    slots = engine.keys.fill_slots()
    engine.redis.zadd(slots, {"dead-holder": int(time.time() * 1000) + 200})
    engine.redis.pexpire(slots, 200)
    started = time.perf_counter()
    result = engine.fetch("A")
    assert result.cache == "miss" and result.found
    assert 0.1 <= time.perf_counter() - started < 2.0


def test_the_fill_slots_key_always_has_a_ttl(fake_server):
    repo = SlowRepo({"A": summary("A")}, seconds=0.3)
    engine = make(fake_server, repo, max_fills=4, lease_ms=100)
    thread = threading.Thread(target=engine.fetch, args=("A",))
    thread.start()
    time.sleep(0.15)
    assert engine.redis.zcard(engine.keys.fill_slots()) == 1
    assert 0 < engine.redis.pttl(engine.keys.fill_slots()) <= 100
    thread.join()

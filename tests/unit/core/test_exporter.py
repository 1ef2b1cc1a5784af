"""cachewarm.exporter: the Prometheus collector, on fakeredis; and the running totals it reads (metrics.py)."""

from __future__ import annotations

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import ConnectionError as RedisConnectionError

from cachewarm.exporter import COUNTERS, CacheCollector, queue_keys
from cachewarm.metrics import RETENTION_SECONDS, TOTALS_TTL_SECONDS, Metrics
from tests.support.exporter import KEYS, filled, samples


def value(scrape, name, **labels):
    return scrape[(name, tuple(sorted(labels.items())))]


# -- the running totals ---------------------------------------------------------------------------
def test_every_count_goes_to_the_minute_and_to_the_running_totals_both_with_a_ttl(r):
    metrics = Metrics(r, KEYS)
    metrics.incr_many({"reads": 3, "misses": 1, "fills": 0})
    pipe = r.pipeline(transaction=False)
    from collections import Counter

    metrics.record(pipe, Counter(reads=2, waits=1), now=1_800_000_000.0)  # another minute: the totals still add
    pipe.execute()
    assert metrics.totals() == {"reads": 5, "misses": 1, "waits": 1}
    assert 0 < r.ttl(metrics.totals_key) <= TOTALS_TTL_SECONDS
    assert 0 < r.ttl(metrics.bucket_key(1_800_000_000.0)) <= RETENTION_SECONDS
    assert metrics.window(60)["reads"] == 3  # the buckets are unchanged: windows keep working


def test_the_totals_ttl_is_renewed_on_every_write(r):
    metrics = Metrics(r, KEYS)
    metrics.incr("reads")
    r.expire(metrics.totals_key, 10)
    metrics.incr("reads")
    assert r.ttl(metrics.totals_key) > 10


def test_the_totals_keep_growing_when_old_buckets_expire(r):
    metrics = Metrics(r, KEYS)
    metrics.incr("reads", 7)
    r.delete(metrics.bucket_key(__import__("time").time()))  # the minute's bucket expired
    metrics.incr("reads", 1)
    assert metrics.totals()["reads"] == 8


# -- the collector ------------------------------------------------------------------------------
def test_counters_come_from_the_totals_with_base_units():
    collector, _ = filled()
    scrape = samples(collector)
    assert value(scrape, "cachewarm_cache_up") == 1 and value(scrape, "cachewarm_broker_up") == 1
    assert value(scrape, "cachewarm_cache_reads_total") == 10
    # hits = reads - misses - wait timeouts - early refreshes (cachewarm.stats.window_summary)
    assert value(scrape, "cachewarm_cache_hits_total") == 10 - 2 - 1 - 1
    assert value(scrape, "cachewarm_cache_fill_seconds_total") == pytest.approx(0.004)
    assert value(scrape, "cachewarm_cache_single_flight_waits_total") == 1
    assert value(scrape, "cachewarm_cache_l1_hits_total") == 4
    for reason in ("lease", "floor", "hold_off"):
        assert value(scrape, "cachewarm_cache_refused_fills_total", reason=reason) == 1
    assert value(scrape, "cachewarm_audit_checked_total") == 20 and value(scrape, "cachewarm_audit_stale_total") == 1


def test_every_counter_is_served_and_reads_zero_before_its_first_count():
    collector = CacheCollector(fakeredis.FakeRedis(), KEYS)
    scrape = samples(collector)
    for name, _ in COUNTERS.values():
        assert value(scrape, f"{name}_total") == 0, name
    assert value(scrape, "cachewarm_cache_l1_invalidations_total") == 0
    # No reads yet: no hit ratio rather than a made-up one; no broker given: no queue lengths.
    assert not [key for key in scrape if key[0] in ("cachewarm_cache_hit_ratio", "celery_queue_length")]


def test_gauges_windows_keys_memory_lag_and_stale_fraction():
    collector, _ = filled()
    scrape = samples(collector)
    for window in ("1m", "5m", "1h"):
        assert value(scrape, "cachewarm_cache_hit_ratio", window=window) == pytest.approx(0.6)
        assert value(scrape, "cachewarm_audit_stale_ratio", window=window) == pytest.approx(0.05)
    assert value(scrape, "cachewarm_cache_summaries") == 1
    assert value(scrape, "cachewarm_redis_memory_used_bytes") == 2_400_000
    assert value(scrape, "cachewarm_redis_memory_max_bytes") == 268_435_456
    assert value(scrape, "cachewarm_redis_evicted_keys_total") == 3
    assert value(scrape, "cachewarm_feed_lag_seconds", quantile="0.5") == pytest.approx(0.1205)
    assert value(scrape, "cachewarm_feed_lag_samples") == 3


def test_queue_lengths_use_celery_exporters_name_and_label_and_count_the_priority_lists():
    collector, _ = filled()
    scrape = samples(collector)
    assert value(scrape, "celery_queue_length", queue_name="warm") == 3  # 2 + 1 at priority 9
    assert value(scrape, "celery_queue_length", queue_name="maintenance") == 0
    assert queue_keys("warm") == ["warm", "warm\x06\x163", "warm\x06\x166", "warm\x06\x169"]


def test_hits_never_go_down_while_a_misses_tally_catches_up():
    collector, cache = filled()
    first = value(samples(collector), "cachewarm_cache_hits_total")
    # The miss of a read whose read tally was already flushed arrives in the next flush.
    Metrics(cache, KEYS).incr("misses", 2)
    assert value(samples(collector), "cachewarm_cache_hits_total") == first
    Metrics(cache, KEYS).incr("reads", 5)
    assert value(samples(collector), "cachewarm_cache_hits_total") == first + 3


def test_the_summary_count_is_cached_between_scrapes():
    now = [1_800_000_000.0]
    collector, cache = filled()
    collector.clock = lambda: now[0]
    assert value(samples(collector), "cachewarm_cache_summaries") == 1
    cache.set(KEYS.summary("Other"), "x", ex=60)
    assert value(samples(collector), "cachewarm_cache_summaries") == 1
    now[0] += collector.key_count_seconds
    assert value(samples(collector), "cachewarm_cache_summaries") == 2


def test_an_unreachable_cache_or_broker_is_a_zero_up_gauge_not_an_error():
    server, broker_server = fakeredis.FakeServer(), fakeredis.FakeServer()
    server.connected = broker_server.connected = False
    collector = CacheCollector(fakeredis.FakeRedis(server=server), KEYS,
                               broker=fakeredis.FakeRedis(server=broker_server), queues=["warm"])
    scrape = samples(collector)
    assert scrape == {("cachewarm_cache_up", ()): 0, ("cachewarm_broker_up", ()): 0}


def test_a_failing_section_drops_only_its_metrics(monkeypatch):
    collector, _ = filled()

    def refuse(*args, **kwargs):
        raise RedisConnectionError("lost mid-scrape")

    monkeypatch.setattr("cachewarm.exporter.feed_lag", refuse)
    names = {name for name, _ in samples(collector)}
    assert "cachewarm_feed_lag_seconds" not in names
    assert {"cachewarm_cache_reads_total", "cachewarm_cache_hit_ratio", "celery_queue_length"} <= names


def test_the_text_format_parses_and_follows_the_naming_conventions():
    collector, _ = filled()
    registry = CollectorRegistry()
    registry.register(collector)
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert families
    for family in families:
        assert family.name.startswith(("cachewarm_", "celery_")), family.name
        assert family.documentation, family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        else:
            assert not family.name.endswith("_total"), family.name

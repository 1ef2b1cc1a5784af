"""The cache's metrics in Prometheus form, read from Redis on every scrape (``cachewarm exporter``).

A stateless bridge: every figure lives in Redis already (see :mod:`cachewarm.stats`
for where each comes from), so the exporter keeps nothing that matters and any
number of them can run. What it serves:

* **counters** (``*_total``) from the running totals that
  :class:`~cachewarm.metrics.Metrics` keeps beside its per-minute buckets. Only
  those only ever grow: a sum over the retained buckets drops each time the
  oldest one expires, and ``rate()`` would read every drop as a counter reset.
  ``hits`` is not counted by the engine (a hit costs no tally); it is derived,
  ``reads`` minus the reads that went to DynamoDB, and held monotonic here;
* **gauges** for the state: hit ratio per window, cached summaries, memory,
  queue lengths, the change feed's lag, the audit's stale fraction;
* ``cachewarm_cache_up`` / ``cachewarm_broker_up``: 0 when that Redis did not
  answer, in which case its other metrics are left out of the scrape (never
  an error page: Prometheus's own ``up`` says whether the exporter answered).

``celery_queue_length{queue_name}`` is named as in celery-exporter
(danihodovic/celery-exporter), so dashboards written for it work on ours.
The queue names come from the caller (the core does not import the workers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cachewarm.keys import KeySchema
from cachewarm.metrics import Metrics
from cachewarm.stats import consistency_summary, count_keys, feed_lag, memory, window_summary

if TYPE_CHECKING:
    import redis

#: Hit-ratio and stale-fraction windows, label -> seconds. Longer ones cost one HGETALL per minute per scrape.
WINDOWS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600}
#: Counting the cached summaries SCANs the whole keyspace: at most this often, whatever the scrape interval.
KEY_COUNT_SECONDS = 60.0
#: kombu's Redis transport keeps priorities 3, 6 and 9 in sibling lists named queue + separator + priority
#: (as infra's queue-depth function counts them).
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = ("3", "6", "9")

#: Running-total field -> (metric name without ``_total``, help). ``l1_*`` are the near cache's, 0 until counted.
COUNTERS: dict[str, tuple[str, str]] = {
    "reads": ("cachewarm_cache_reads", "Cache reads (sampled at HOT_SAMPLE_RATE and weighted)."),
    "misses": ("cachewarm_cache_misses", "Reads that took the fill lease and read DynamoDB."),
    "fills": ("cachewarm_cache_fills", "Summaries stored in the cache (reader fills and warming)."),
    "fill_us": ("cachewarm_cache_fill_seconds", "Seconds spent reading DynamoDB for reader-triggered fills."),
    "waits": ("cachewarm_cache_single_flight_waits",
              "Reads that waited for another reader's fill and got its value (single-flight)."),
    "fill_slot_waits": ("cachewarm_cache_fill_slot_waits",
                        "Reads that found every fill slot taken (CACHE_MAX_FILLS) and waited."),
    "wait_timeouts": ("cachewarm_cache_wait_timeouts",
                      "Waiting reads that outlived the DynamoDB read budget and read DynamoDB themselves."),
    "invalidations": ("cachewarm_cache_invalidations", "Cached summaries invalidated (writes, the feed, invalidate)."),
    "early_refreshes": ("cachewarm_cache_early_refreshes", "Hits that refreshed ahead of expiry (XFetch)."),
    "l1_hits": ("cachewarm_cache_l1_hits", "Reads answered by a process's near cache (L1)."),
    "l1_invalidations": ("cachewarm_cache_l1_invalidations", "Near-cache (L1) entries dropped on invalidation."),
    "feed_records": ("cachewarm_feed_records", "Change-feed stream records read."),
    "feed_ignored": ("cachewarm_feed_ignored_records",
                     "Change-feed records ignored (not a restaurant's or a review's change)."),
    "feed_invalidated": ("cachewarm_feed_invalidations", "Names the change feed invalidated."),
    "audit_checked": ("cachewarm_audit_checked", "Cached summaries the consistency audit compared with DynamoDB."),
    "audit_stale": ("cachewarm_audit_stale", "Cached summaries the audit found stale (and removed)."),
}
#: Fills refused as stale sets, by reason label -> running-total field.
REFUSALS = {"lease": "refused_lease", "floor": "refused_floor", "hold_off": "refused_hold"}
#: Reads that went to DynamoDB (the complement of hits; cachewarm.stats.window_summary).
DB_READS = ("misses", "wait_timeouts", "early_refreshes")


def queue_keys(queue: str) -> list[str]:
    """The broker lists holding ``queue``'s messages: the queue itself and its priority siblings."""
    return [queue, *(f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS)]


class CacheCollector(Collector):
    """Reads the cache's and the broker's state on each ``collect()`` (one scrape).

    ``broker`` may be None (queue lengths are then left out); ``queues`` are the
    Celery queue names. ``clock`` is for tests.
    """

    def __init__(self, cache: redis.Redis, keys: KeySchema, *, broker: redis.Redis | None = None,
                 queues: Sequence[str] = (), windows: Mapping[str, int] = WINDOWS,
                 key_count_seconds: float = KEY_COUNT_SECONDS, clock: Callable[[], float] = time.time):
        self.cache = cache
        self.keys = keys
        self.broker = broker
        self.queues = tuple(queues)
        self.windows = dict(windows)
        self.key_count_seconds = key_count_seconds
        self.clock = clock
        self.metrics = Metrics(cache, keys)
        self._lock = threading.Lock()  # scrapes may overlap (threaded HTTP server)
        self._hits = 0
        self._summaries: tuple[float, int] | None = None

    def collect(self) -> Iterator[Metric]:
        """One scrape: every metric whose source answered."""
        from redis.exceptions import RedisClusterException, RedisError

        errors = (RedisError, RedisClusterException, OSError, ValueError)
        now = self.clock()
        cache_up = 1
        try:
            totals = self.metrics.totals()
        except errors:
            cache_up = 0
        yield _gauge("cachewarm_cache_up", "1 when the cache's Redis answered this scrape, else 0.", cache_up)
        if cache_up:
            yield from self._counters(totals)
            yield from self._guarded(errors, lambda: self._windows(now))
            yield from self._guarded(errors, lambda: self._keys_and_memory(now))
            yield from self._guarded(errors, self._feed_lag)
        if self.broker is not None:
            try:
                lengths = self._queue_lengths(self.broker)
            except errors:
                lengths = None
            yield _gauge("cachewarm_broker_up", "1 when the broker's Redis answered this scrape, else 0.",
                         0 if lengths is None else 1)
            if lengths is not None:
                family = GaugeMetricFamily("celery_queue_length", "The number of message in broker queue.",
                                           labels=["queue_name"])
                for queue, length in lengths.items():
                    family.add_metric([queue], length)
                yield family

    # -- sections -----------------------------------------------------------------------------
    @staticmethod
    def _guarded(errors: tuple[type[BaseException], ...], build: Callable[[], list[Metric]]) -> list[Metric]:
        """A section's metrics, or none when its Redis calls fail (the rest of the scrape still counts)."""
        try:
            return build()
        except errors:
            return []

    def _counters(self, totals: Mapping[str, int]) -> Iterator[Metric]:
        for field, (name, help_text) in COUNTERS.items():
            value = totals.get(field, 0)
            yield _counter(name, help_text, value / 1e6 if field == "fill_us" else value)
        with self._lock:
            derived = max(0, totals.get("reads", 0) - sum(totals.get(f, 0) for f in DB_READS))
            # A read's tally is flushed before the tally of the miss it turns out to be, so the
            # difference can dip by the misses in flight: hold the largest value served, never less.
            self._hits = max(self._hits, derived)
            hits = self._hits
        yield _counter("cachewarm_cache_hits", "Reads answered from the cache without reading DynamoDB "
                       "(reads minus misses, wait timeouts and early refreshes).", hits)
        refused = CounterMetricFamily("cachewarm_cache_refused_fills",
                                      "Fills refused as stale sets: the lease was lost, a writer's version "
                                      "floor was above the value, or a change-feed hold-off was on.",
                                      labels=["reason"])
        for reason, field in REFUSALS.items():
            refused.add_metric([reason], totals.get(field, 0))
        yield refused

    def _windows(self, now: float) -> list[Metric]:
        ratio = GaugeMetricFamily("cachewarm_cache_hit_ratio",
                                  "Hits over reads in the window (absent while the window has no reads).",
                                  labels=["window"])
        stale = GaugeMetricFamily("cachewarm_audit_stale_ratio",
                                  "Share of the summaries the audit checked in the window that were stale "
                                  "(absent while it checked none).", labels=["window"])
        for label, seconds in self.windows.items():
            counts = self.metrics.window(seconds, now)
            hit_ratio = window_summary(counts)["hit_ratio"]
            if hit_ratio is not None:
                ratio.add_metric([label], hit_ratio)
            stale_fraction = consistency_summary(counts)["stale_fraction"]
            if stale_fraction is not None:
                stale.add_metric([label], stale_fraction)
        return [ratio, stale]

    def _keys_and_memory(self, now: float) -> list[Metric]:
        from cachewarm.shards import dbsize

        if self._summaries is None or now - self._summaries[0] >= self.key_count_seconds:
            self._summaries = (now, count_keys(self.cache, self.keys.summary_pattern()))
        out: list[Metric] = [
            _gauge("cachewarm_cache_summaries", f"Cached summaries (SCAN, recounted at most every "
                   f"{self.key_count_seconds:g} s).", self._summaries[1]),
            _gauge("cachewarm_redis_keys", "Keys in the cache's Redis database (DBSIZE; all primaries).",
                   dbsize(self.cache)),
        ]
        mem = memory(self.cache)  # fields are None where INFO is refused (ACLs, some managed services)
        for field, name, help_text in (
            ("used_memory", "cachewarm_redis_memory_used_bytes", "Memory used by the cache's Redis (INFO)."),
            ("maxmemory", "cachewarm_redis_memory_max_bytes", "The cache's Redis maxmemory (0: no limit)."),
        ):
            if isinstance(mem.get(field), int):
                out.append(_gauge(name, help_text, mem[field]))
        for field, name, help_text in (
            ("evicted_keys", "cachewarm_redis_evicted_keys", "Keys evicted for maxmemory (server-wide)."),
            ("expired_keys", "cachewarm_redis_expired_keys", "Keys expired by their TTL (server-wide)."),
        ):
            if isinstance(mem.get(field), int):
                out.append(_counter(name, help_text, mem[field]))
        return out

    def _feed_lag(self) -> list[Metric]:
        lag = feed_lag(self.cache, self.keys)
        family = GaugeMetricFamily("cachewarm_feed_lag_seconds",
                                   "Change feed write-to-invalidation lag over its latest samples, by quantile.",
                                   labels=["quantile"])
        for quantile, field in (("0.5", "p50_ms"), ("0.99", "p99_ms")):
            if lag[field] is not None:
                family.add_metric([quantile], lag[field] / 1000.0)
        return [family, _gauge("cachewarm_feed_lag_samples", "Lag samples the quantiles are computed over.",
                               lag["count"])]

    def _queue_lengths(self, broker: redis.Redis) -> dict[str, int]:
        pipe = broker.pipeline(transaction=False)
        for queue in self.queues:
            for key in queue_keys(queue):
                pipe.llen(key)
        replies: list[Any] = pipe.execute()
        per_queue = len(PRIORITY_STEPS) + 1
        return {queue: sum(int(r) for r in replies[i * per_queue:(i + 1) * per_queue])
                for i, queue in enumerate(self.queues)}


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)

"""Cache counters kept in Redis: per-minute hashes that expire after a day, and running totals.

Counting must never fail a read, so every write here swallows Redis errors.
The read path's counters (reads, misses, fills, refusals, waits) are tallied in
process memory (:meth:`Metrics.tally`) and flushed on the pipeline of a read
that is due to flush hot-key counts anyway (see hotkeys), or by
:meth:`~cachewarm.cache.CacheAside.flush`: no read pays an extra round trip,
and no Lua script writes a statistics key, so every script touches one slot
(Redis Cluster). Invalidations are counted where they happen.

Every increment goes to two places in the same pipeline: the minute's bucket
(``<prefix>:v2:stats:m:<minute>``, for windows such as "the last 5 minutes") and
the running totals (``<prefix>:v2:stats:total``, for Prometheus). The totals
only ever grow, so ``rate()`` works on them; summing the retained buckets would
not do, because the sum drops whenever the oldest bucket expires. The totals
hash has a TTL like every key (:data:`TOTALS_TTL_SECONDS`, renewed on every
write), so it disappears only after a month without a single count; an
evicted or expired totals hash reads as a counter reset, which Prometheus
handles.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cachewarm.keys import KeySchema

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline

BUCKET_SECONDS = 60
RETENTION_SECONDS = 25 * 3600
#: The running totals outlive any quiet spell worth graphing; renewed on every write.
TOTALS_TTL_SECONDS = 30 * 24 * 3600


class Metrics:
    """Increment and read the cache's counters."""

    def __init__(self, redis_client: redis.Redis, keys: KeySchema):
        self.redis = redis_client
        self.keys = keys
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()

    def bucket_key(self, now: float) -> str:
        """Hash of counters for the minute containing ``now``."""
        return self.keys.stats(f"m:{int(now // BUCKET_SECONDS)}")

    @property
    def totals_key(self) -> str:
        """Hash of running totals since the hash was created (the exporter's counters)."""
        return self.keys.stats("total")

    def tally(self, field: str, amount: int = 1) -> None:
        """Count in process memory; sent with the next flush (no round trip now)."""
        if amount:
            with self._lock:
                self._pending[field] += amount

    def drain(self) -> Counter[str]:
        """Take every pending tally (the caller queues it with :meth:`record` or puts it back)."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
        return pending

    def restore(self, pending: Counter[str]) -> None:
        """Put tallies back after a failed flush, so a Redis blip loses no counts."""
        with self._lock:
            self._pending.update(pending)

    def record(self, pipe: Pipeline, counts: Counter[str], now: float) -> None:
        """Queue the flush of tallied counters on a caller's pipeline."""
        if not counts:
            return
        self._queue(pipe, counts, now)

    def incr(self, field: str, amount: int = 1) -> None:
        """Add to one counter in the current minute."""
        self.incr_many({field: amount})

    def incr_many(self, amounts: dict[str, int]) -> None:
        """Add to several counters in one round trip."""
        from redis.exceptions import RedisError

        try:
            pipe = self.redis.pipeline(transaction=False)
            self.queue_incr(pipe, amounts)
            pipe.execute()
        except RedisError:
            pass

    def queue_incr(self, pipe: Pipeline, amounts: dict[str, int]) -> None:
        """Queue counter increments on a caller's pipeline (no round trip of their own)."""
        self._queue(pipe, amounts, time.time())

    def _queue(self, pipe: Pipeline, amounts: Mapping[str, int], now: float) -> None:
        """Queue each increment on the minute's bucket and on the running totals."""
        amounts = {field: amount for field, amount in amounts.items() if amount}
        if not amounts:
            return
        key, totals = self.bucket_key(now), self.totals_key
        for field, amount in amounts.items():
            pipe.hincrby(key, field, amount)
            pipe.hincrby(totals, field, amount)
        pipe.expire(key, RETENTION_SECONDS, nx=True)
        pipe.expire(totals, TOTALS_TTL_SECONDS)

    def totals(self) -> dict[str, int]:
        """Every counter's running total (empty before the first count, or after a month of none)."""
        raw = self.redis.hgetall(self.totals_key)
        return {(f.decode() if isinstance(f, bytes) else f): int(v) for f, v in raw.items()}

    def window(self, seconds: int, now: float | None = None) -> dict[str, int]:
        """Counter totals over the last ``seconds``."""
        now = time.time() if now is None else now
        first = int((now - seconds) // BUCKET_SECONDS) + 1
        last = int(now // BUCKET_SECONDS)
        pipe = self.redis.pipeline(transaction=False)
        for minute in range(first, last + 1):
            pipe.hgetall(self.keys.stats(f"m:{minute}"))
        totals: dict[str, int] = {}
        for bucket in pipe.execute():
            for field, value in bucket.items():
                name = field.decode() if isinstance(field, bytes) else field
                totals[name] = totals.get(name, 0) + int(value)
        return totals

"""Cache counters kept in Redis, in per-minute hashes that expire after a day.

Counting must never fail a read, so every write here swallows Redis errors.
The read path's counters (reads, misses, fills, refusals, waits) are tallied in
process memory (:meth:`Metrics.tally`) and flushed on the pipeline of a read
that is due to flush hot-key counts anyway (see hotkeys), or by
:meth:`~cachewarm.cache.CacheAside.flush`: no read pays an extra round trip,
and no Lua script writes a statistics key, so every script touches one slot
(Redis Cluster). Invalidations are counted where they happen.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from cachewarm.keys import KeySchema

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline

BUCKET_SECONDS = 60
RETENTION_SECONDS = 25 * 3600



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
        key = self.bucket_key(now)
        for field, amount in counts.items():
            pipe.hincrby(key, field, amount)
        pipe.expire(key, RETENTION_SECONDS, nx=True)

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
        key = self.bucket_key(time.time())
        for field, amount in amounts.items():
            if amount:
                pipe.hincrby(key, field, amount)
        pipe.expire(key, RETENTION_SECONDS, nx=True)

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

"""Cache counters kept in Redis, in per-minute hashes that expire after a day.

Counting must never fail a read, so every write here swallows Redis errors.
Reads are tallied in memory and flushed on a read's own pipeline (see hotkeys);
misses, fills and refusals are counted inside the Lua scripts that decide them
(no extra round trip); waits and invalidations where they happen.
"""

from __future__ import annotations

import time
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

    def bucket_key(self, now: float) -> str:
        """Hash of counters for the minute containing ``now``."""
        return self.keys.stats(f"m:{int(now // BUCKET_SECONDS)}")

    def record_reads(self, pipe: Pipeline, reads: int, now: float) -> None:
        """Queue the flush of tallied reads on a read's pipeline."""
        key = self.bucket_key(now)
        pipe.hincrby(key, "reads", reads)
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

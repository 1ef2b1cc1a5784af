"""Hot-key tracking: which names are read most, with decay.

Reads are counted in one sorted set per time bucket (a minute by default).
Counting must cost the hit path nothing measurable, so reads are first tallied
in process memory and flushed at most every ``flush_seconds``, riding in the
pipeline of the read that happens to be due: no read ever pays an extra round
trip, and most reads are a bare GET. The first read of a process flushes at
once, so even a one-shot CLI read is counted. With ``sample_rate`` < 1 only a
sample of reads are tallied (each then counts ``1/rate``).

Top K sums the recent buckets with exponentially decaying weights, so
yesterday's favourite fades out. Every bucket has a TTL, like every key we own.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from cachewarm.keys import KeySchema

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline


class HotKeys:
    """Counts reads per name and ranks the hottest."""

    def __init__(
        self,
        redis_client: redis.Redis,
        keys: KeySchema,
        *,
        sample_rate: float = 1.0,
        bucket_seconds: int = 60,
        window_buckets: int = 30,
        half_life_buckets: float = 5.0,
        flush_seconds: float = 0.5,
        max_pending: int = 2000,
        rand: Callable[[], float] = random.random,
    ):
        self.redis = redis_client
        self.keys = keys
        self.sample_rate = sample_rate
        self.bucket_seconds = bucket_seconds
        self.window_buckets = window_buckets
        self.half_life_buckets = half_life_buckets
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.rand = rand
        self._pending: Counter[str] = Counter()
        self._next_flush = 0.0  # the first read flushes immediately
        self._lock = threading.Lock()

    def note(self, name: str) -> Counter[str] | None:
        """Tally one read; return the tallies to flush now, or None (the usual case)."""
        if self.sample_rate < 1.0:
            if self.rand() >= self.sample_rate:
                return None
            weight = max(1, round(1.0 / self.sample_rate))
        else:
            weight = 1
        with self._lock:
            self._pending[name] += weight
            now = time.monotonic()
            if now < self._next_flush and len(self._pending) < self.max_pending:
                return None
            pending, self._pending = self._pending, Counter()
            self._next_flush = now + self.flush_seconds
        return pending

    def drain(self) -> Counter[str]:
        """Take every pending tally (to flush on demand, e.g. at exit)."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
            self._next_flush = time.monotonic() + self.flush_seconds
        return pending

    def restore(self, pending: Counter[str]) -> None:
        """Put tallies back after a failed flush, so a Redis blip loses no counts."""
        with self._lock:
            self._pending.update(pending)

    def bucket(self, now: float) -> int:
        """The bucket number for a time."""
        return int(now // self.bucket_seconds)

    def record(self, pipe: Pipeline, counts: Counter[str], now: float) -> None:
        """Queue the flush of ``counts`` on ``pipe``; the caller executes it."""
        key = self.keys.hot_bucket(self.bucket(now))
        for name, count in counts.items():
            pipe.zincrby(key, count, name)
        pipe.expire(key, self.bucket_seconds * (self.window_buckets + 1), nx=True)

    def top(self, k: int, now: float) -> list[tuple[str, float]]:
        """The ``k`` hottest names with their decayed scores, hottest first."""
        current = self.bucket(now)
        weights = {
            self.keys.hot_bucket(current - age): math.pow(0.5, age / self.half_life_buckets)
            for age in range(self.window_buckets)
        }
        tmp = self.keys.hot_bucket(-1) + f":tmp:{random.getrandbits(48):x}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.zunionstore(tmp, weights)
        pipe.zrevrange(tmp, 0, k - 1, withscores=True)
        pipe.unlink(tmp)
        ranked = pipe.execute()[1]
        return [(member.decode() if isinstance(member, bytes) else member, score) for member, score in ranked]

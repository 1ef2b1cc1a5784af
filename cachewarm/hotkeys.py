"""Hot-key tracking: which names are read most, with decay.

Reads are counted in one sorted set per time bucket (a minute by default). The
count rides in the same pipeline as the read, so a hit costs no extra round
trip, and with ``sample_rate`` < 1 only a sample of reads carry it at all (each
sampled read then counts ``1/rate``). Top K sums the recent buckets with
exponentially decaying weights, so yesterday's favourite fades out. Every bucket
has a TTL, like every other key we own.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from cachewarm.keys import KeySchema


class HotKeys:
    """Counts reads per name and ranks the hottest."""

    def __init__(
        self,
        redis_client: Any,
        keys: KeySchema,
        *,
        sample_rate: float = 1.0,
        bucket_seconds: int = 60,
        window_buckets: int = 30,
        half_life_buckets: float = 5.0,
        rand: Callable[[], float] = random.random,
    ):
        self.redis = redis_client
        self.keys = keys
        self.sample_rate = sample_rate
        self.bucket_seconds = bucket_seconds
        self.window_buckets = window_buckets
        self.half_life_buckets = half_life_buckets
        self.rand = rand

    def sample_weight(self) -> int:
        """0 if this read is not sampled, else how many reads it stands for."""
        if self.sample_rate >= 1.0:
            return 1
        if self.sample_rate <= 0.0 or self.rand() >= self.sample_rate:
            return 0
        return max(1, round(1.0 / self.sample_rate))

    def bucket(self, now: float) -> int:
        """The bucket number for a time."""
        return int(now // self.bucket_seconds)

    def record(self, pipe: Any, name: str, weight: int, now: float) -> None:
        """Queue the count of one (sampled) read on ``pipe``; the caller executes it."""
        key = self.keys.hot_bucket(self.bucket(now))
        pipe.zincrby(key, weight, name)
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

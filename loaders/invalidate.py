"""Write-around for loads: the load never fills the cache, it invalidates what it touched.

A restaurant's cached summary is built from everything in GSI1 partition
``REST#<name>``: the restaurant item and its reviews. So after a block of lines
is written, every ``<name>`` seen in a written item's ``GSI1PK`` is invalidated
through the cache engine (which also voids fill leases, so a reader that read
the table before our write cannot store its old value after it). Invalidating
*after* the write is what makes this safe; before it, a reader could re-fill
the old value in between.

A load must not fail because the cache is down: the first Redis error turns
invalidation off for the rest of this process, and the names left alone are
counted, so the report can say how many summaries may be stale (for at most
the cache TTL) instead of staying silent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cachewarm.settings import Settings

log = logging.getLogger(__name__)


class Invalidates(Protocol):
    """What the loader needs of a cache engine (``cachewarm.cache.CacheAside`` is one)."""

    def invalidate_many(self, names: Iterable[str]) -> int:
        """Invalidate several names in one round trip."""
        ...


class Invalidator:
    """Invalidates restaurant summaries through a lazily built cache engine."""

    def __init__(self, engine_factory: Callable[[], Invalidates]):
        self._engine_factory = engine_factory
        self._engine: Invalidates | None = None
        self.error: str | None = None  # set once the cache has failed

    def __call__(self, names: Collection[str]) -> tuple[int, int]:
        """Invalidate ``names``; return ``(invalidated, skipped because the cache is unavailable)``."""
        if not names:
            return 0, 0
        if self.error is not None:
            return 0, len(names)
        from redis.exceptions import RedisError

        try:
            engine = self._engine or self._build()
            engine.invalidate_many(list(names))  # one round trip for the block
        except (RedisError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("cache unavailable, write-around invalidation is off for this load: %s", self.error)
            return 0, len(names)
        return len(names), 0

    def _build(self) -> Invalidates:
        self._engine = self._engine_factory()
        return self._engine


def settings_engine_factory(settings: Settings) -> Callable[[], Invalidates]:
    """A factory for a cache engine to invalidate through (built in the writer process, on first use)."""

    def build() -> Invalidates:
        from cachewarm.cache import CacheAside
        from cachewarm.clients import cache_redis
        from loaders.client import repository

        # The engine only invalidates here; its repository shares the writers' DynamoDB
        # client rather than building a second one (a botocore client costs about 12 MB).
        return CacheAside(cache_redis(settings), repository(settings), settings)

    return build

"""Wiring: the per-process repository and cache engine, built from settings on first use."""

from __future__ import annotations

import atexit
import functools
import os
import time

from cachewarm.cache import CacheAside, FetchResult
from cachewarm.clients import cache_redis, dynamodb_client
from cachewarm.model import Summary
from cachewarm.repository import RestaurantRepository
from cachewarm.settings import Settings, get_settings


def repository(settings: Settings | None = None) -> RestaurantRepository:
    """The DynamoDB repository for this process."""
    settings = settings or get_settings()
    return RestaurantRepository(dynamodb_client(settings), settings.table_name)


class LazyRepository:
    """The repository, built on the first read that needs DynamoDB.

    A cache hit then never imports boto3 nor builds a DynamoDB client: most of a
    one-shot ``cachewarm get``'s wall time before. The one-time construction is
    reported apart from the read that triggered it (``setup_seconds``, taken by
    the engine with :meth:`take_setup_seconds`), so a read's latency stays the
    read's own.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._repo: RestaurantRepository | None = None
        self._setup = 0.0

    @property
    def repo(self) -> RestaurantRepository:
        """The real repository (built now if it was not yet)."""
        if self._repo is None:
            started = time.perf_counter()
            self._repo = repository(self.settings)
            self._setup += time.perf_counter() - started
        return self._repo

    def get_summary(self, name: str) -> Summary | None:
        """The restaurant's summary, or None (see :meth:`RestaurantRepository.get_summary`)."""
        return self.repo.get_summary(name)

    def take_setup_seconds(self) -> float:
        """Seconds spent building the client since the last call (0 after the first)."""
        setup, self._setup = self._setup, 0.0
        return setup


@functools.cache
def _engine(pid: int, settings: Settings) -> CacheAside:
    engine = CacheAside(cache_redis(settings), LazyRepository(settings), settings)
    # Read tallies are flushed lazily; send the remainder when the process ends.
    atexit.register(engine.flush)
    return engine


def engine(settings: Settings | None = None) -> CacheAside:
    """The cache-aside engine for this process (rebuilt after a fork)."""
    return _engine(os.getpid(), settings or get_settings())


def flush() -> None:
    """Send the counters this process's engine still holds in memory (after a task); builds nothing."""
    if _engine.cache_info().currsize:
        engine().flush()


def reset() -> None:
    """Forget this process's wiring: settings, clients and engines are rebuilt from the environment on next use.

    For tools that point one process at another stack (the demo, the tests, the
    benchmarks) after it read its settings; a running worker never needs it.
    """
    from cachewarm.clients import reset_clients
    from cachewarm.settings import get_settings

    get_settings.cache_clear()
    reset_clients()
    _engine.cache_clear()


def fetch_restaurant_summary(name: str, settings: Settings | None = None) -> FetchResult:
    """Read a restaurant summary through the cache (cache-aside).

    A hit returns the cached summary; a miss reads DynamoDB, caches the result
    with a jittered TTL, and returns it. ``result.source`` says ``cache`` or
    ``db``; ``result.latency_ms`` how long it took; ``result.found`` is False
    for an unknown restaurant (cached briefly as not found).
    """
    return engine(settings).fetch(name)

"""Wiring: the per-process repository and cache engine, built from settings on first use."""

from __future__ import annotations

import atexit
import functools
import os

from cachewarm.cache import CacheAside, FetchResult
from cachewarm.clients import cache_redis, dynamodb_client
from cachewarm.repository import RestaurantRepository
from cachewarm.settings import Settings, get_settings


def repository(settings: Settings | None = None) -> RestaurantRepository:
    """The DynamoDB repository for this process."""
    settings = settings or get_settings()
    return RestaurantRepository(dynamodb_client(settings), settings.table_name)


@functools.cache
def _engine(pid: int, settings: Settings) -> CacheAside:
    engine = CacheAside(cache_redis(settings), repository(settings), settings)
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

"""Worker start-up checks."""

from __future__ import annotations

import logging

from celery.signals import worker_ready

log = logging.getLogger("cachewarm.worker")


@worker_ready.connect
def check_eviction_policy(sender=None, **_: object) -> None:
    """Warn when Redis could evict the broker's keys (allkeys-* policies)."""
    from redis.exceptions import RedisError

    from cachewarm.clients import redis_client
    from cachewarm.eviction import eviction_warning, read_policy
    from cachewarm.masking import mask_url
    from cachewarm.settings import get_settings

    settings = get_settings()
    for role, url in {"broker": settings.broker_url, "cache": settings.cache_url}.items():
        try:
            policy = read_policy(redis_client(url, timeout=settings.redis_timeout))
        except RedisError as exc:
            log.warning("cannot check maxmemory-policy of the %s at %s: %s", role, mask_url(url), exc)
            continue
        warning = eviction_warning(policy)
        if warning:
            log.warning("%s Redis %s: %s", role, mask_url(url), warning)
        else:
            log.info("%s Redis maxmemory-policy: %s", role, policy)

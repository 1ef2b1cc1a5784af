"""Is it safe to share this Redis between the broker and the cache?

Every cache key has a TTL and broker keys have none, so ``volatile-*`` eviction
policies can only ever evict cache entries. ``allkeys-*`` can evict queued tasks
and the beat schedule; ``noeviction`` makes writes fail when memory is full
(safe for the broker, but fills then fail, which reads tolerate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

RECOMMENDED = "volatile-lfu"


def eviction_warning(policy: str | None) -> str | None:
    """A warning for a policy that could evict broker keys, else None."""
    if policy is None:
        return (f"cannot read maxmemory-policy (CONFIG is disabled, as on ElastiCache); make sure the "
                f"parameter group sets {RECOMMENDED}")
    if policy.startswith("allkeys-"):
        return (f"maxmemory-policy is {policy}: Redis may evict queued tasks and the beat schedule; "
                f"use {RECOMMENDED} on an instance that is both broker and cache")
    return None


def read_policy(client: redis.Redis) -> str | None:
    """The server's maxmemory-policy, or None when CONFIG GET is not allowed."""
    from redis.exceptions import ResponseError

    try:
        value = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except ResponseError:
        return None
    return value.decode() if isinstance(value, bytes) else value

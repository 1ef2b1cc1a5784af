"""Clients, built lazily and once per process.

Nothing here connects at import. A prefork worker must not inherit a client from
its parent (botocore sessions are not fork-safe), so each cache is keyed by pid.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from cachewarm.settings import Settings, get_settings

if TYPE_CHECKING:
    import redis
    from mypy_boto3_dynamodb import DynamoDBClient

T = TypeVar("T")
_lock = threading.Lock()
# Keyed by (pid, kind, ...): each entry is the client that key's builder made.
_clients: dict[tuple[object, ...], object] = {}

#: Credentials handed to a local DynamoDB stand-in (dynalite checks their shape only).
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}

#: The Redis protocol (RESP version) of every client the project configures: this module's, and
#: Celery's result backend and redbeat's (workers/config.py). RESP3, on purpose:
#:
#: * kombu 5.7's Redis transport (the broker: BRPOP, publishes and the pub/sub of events and
#:   broadcast commands) takes no protocol option (its connection parameters are a fixed set; a
#:   ``protocol`` in the broker URL is a TypeError), so its connections speak redis-py 8's default,
#:   RESP3. Choosing RESP2 for the others would put two protocols on one server, each tested for
#:   half of the traffic; with RESP3 everything that talks to Redis speaks one, the one the tests run.
#: * ElastiCache for Valkey 8 (production), Valkey 8.1 and Redis 7.0 (the tests) all serve it (HELLO 3).
#: * Replies keep their RESP2 shapes in Python (redis-py's ``legacy_responses`` default), and the
#:   cache's Lua scripts return integers and strings only, which both protocols carry alike.
#: * Its cost: a new connection's handshake adds HELLO 3 and redis-py's CLIENT MAINT_NOTIFICATIONS
#:   (which ElastiCache, Valkey and Redis 7.0 refuse, and redis-py then ignores): two round trips
#:   per connection, not per command; a hung server still fails at the first, within ``timeout``.
#:
#: tests/unit/test_constraints.py checks that redis-py's default still is this protocol and that
#: kombu still has no option for it: if either changes, state it for the broker too.
REDIS_PROTOCOL = 3


def _cached(key: tuple[object, ...], build: Callable[[], T]) -> T:
    full_key = (os.getpid(), *key)
    client = _clients.get(full_key)
    if client is None:
        with _lock:
            client = _clients.get(full_key)
            if client is None:
                client = _clients[full_key] = build()
    return cast(T, client)


def _botocore_config(settings: Settings) -> Any:
    """Region, retries and timeouts shared by the DynamoDB and DynamoDB Streams clients."""
    from botocore.config import Config

    return Config(
        region_name=settings.aws_region,
        # total_max_attempts counts the first request too; botocore reads "max_attempts" as retries.
        retries={"mode": "standard", "total_max_attempts": settings.dynamodb_max_attempts},
        connect_timeout=settings.dynamodb_timeout,
        read_timeout=settings.dynamodb_timeout,
    )


def dynamodb_client(settings: Settings | None = None, *, validate_parameters: bool = True) -> DynamoDBClient:
    """A low-level boto3 DynamoDB client for this process.

    Retries use botocore's ``standard`` mode: exponential backoff with jitter, a
    cap, and only for throttling and transient errors (``adaptive`` mode is
    experimental, and its rate limiter would see only one process of several).
    ``validate_parameters=False`` is for callers that validated every item
    themselves (the loader): botocore's validator is a large share of its CPU.
    """
    settings = settings or get_settings()

    def build() -> DynamoDBClient:
        import boto3
        from botocore.config import Config

        config = _botocore_config(settings).merge(
            Config(max_pool_connections=64, tcp_keepalive=True, parameter_validation=validate_parameters))
        kwargs: dict[str, Any] = {"config": config}
        if settings.dynamodb_endpoint:
            kwargs["endpoint_url"] = settings.dynamodb_endpoint
            session = boto3.session.Session()
            if session.get_credentials() is None:
                kwargs.update(LOCAL_CREDENTIALS)
        return boto3.session.Session().client("dynamodb", **kwargs)

    return _cached(("dynamodb", settings, validate_parameters), build)


def streams_client(settings: Settings | None = None) -> Any:
    """A boto3 DynamoDB Streams client (``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``; unset means AWS)."""
    settings = settings or get_settings()

    def build() -> Any:
        import boto3

        kwargs: dict[str, Any] = {"config": _botocore_config(settings)}
        if settings.streams_endpoint:
            kwargs["endpoint_url"] = settings.streams_endpoint
            if boto3.session.Session().get_credentials() is None:
                kwargs.update(LOCAL_CREDENTIALS)
        return boto3.session.Session().client("dynamodbstreams", **kwargs)

    return _cached(("dynamodbstreams", settings), build)


def redis_client(url: str, *, timeout: float, retries: int = 1) -> redis.Redis:
    """A redis-py client for ``url`` with bounded socket timeouts.

    Retries are configuration (redis-py's ``Retry``), with jittered exponential
    backoff, and only for connection errors (a dropped socket is worth one quick
    reconnect). Never for timeouts: a hung server would make every read wait
    for each attempt, and for each attempt of the connection handshake inside
    it (four timeouts with one retry), where failing open after one is the point.
    """

    def build() -> redis.Redis:
        import redis
        from redis.backoff import ExponentialWithJitterBackoff
        from redis.exceptions import ConnectionError
        from redis.retry import Retry

        return redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialWithJitterBackoff(cap=0.2, base=0.01), retries,
                        supported_errors=(ConnectionError,)),
            retry_on_error=[ConnectionError],
            health_check_interval=30,
            client_name="cachewarm",
            protocol=REDIS_PROTOCOL,
        )

    return _cached(("redis", url, timeout, retries), build)


def cluster_client(url: str, *, timeout: float) -> redis.Redis:
    """A redis-py ``RedisCluster`` for ``url``, any node of the cluster (it discovers the others).

    No command retries: a shard that is down fails its commands within one socket
    timeout, and the engine reads those names from DynamoDB and skips that shard
    for a while (its breaker is per shard), while the other shards keep serving.
    redis-py still refreshes its slot map after such an error, so a failover's new
    primary is found on the next command. Typed as ``redis.Redis``: the engine uses
    the commands both clients share.
    """

    def build() -> redis.Redis:
        from redis.backoff import NoBackoff
        from redis.cluster import RedisCluster
        from redis.retry import Retry

        return cast("redis.Redis", RedisCluster.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
            client_name="cachewarm",
            protocol=REDIS_PROTOCOL,
        ))

    return _cached(("redis-cluster", url, timeout), build)


def cache_redis(settings: Settings | None = None) -> redis.Redis:
    """The cache's Redis client: one node, or a cluster (``CACHE_REDIS_MODE=cluster``)."""
    settings = settings or get_settings()
    if settings.cache_redis_mode == "cluster":
        return cluster_client(settings.cache_url, timeout=settings.redis_timeout)
    return redis_client(settings.cache_url, timeout=settings.redis_timeout)


def reset_clients() -> None:
    """Forget every cached client (tests, and after settings change)."""
    with _lock:
        _clients.clear()

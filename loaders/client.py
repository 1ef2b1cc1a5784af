"""The DynamoDB client the loader's writer threads share, built once per process."""

from __future__ import annotations

import os
import threading
from typing import Any

from cachewarm.settings import Settings

_clients: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def writer_client(settings: Settings) -> Any:
    """The DynamoDB client writer threads share, built once per process.

    Retry configuration is deliberate: botocore's ``standard`` mode retries
    throttling, 5xx and transport errors with jittered exponential backoff
    (``adaptive`` mode is experimental and its rate limiter would only see one
    process of several). ``UnprocessedItems`` are not an error to botocore;
    :class:`~loaders.writer.BatchWriter` retries those. Parameter validation is
    off because :mod:`loaders.validate` has already checked every item more
    strictly, and botocore's validator is a large share of the client's CPU.
    """
    key = (os.getpid(), settings)
    client = _clients.get(key)
    if client is not None:
        return client
    with _lock:
        if key not in _clients:
            import boto3
            from botocore.config import Config

            from cachewarm.clients import LOCAL_CREDENTIALS

            config = Config(
                region_name=settings.aws_region,
                retries={"mode": "standard", "max_attempts": settings.dynamodb_max_attempts},
                connect_timeout=settings.dynamodb_timeout,
                read_timeout=settings.dynamodb_timeout,
                max_pool_connections=64,
                tcp_keepalive=True,
                parameter_validation=False,
            )
            kwargs: dict[str, Any] = {"config": config}
            session = boto3.session.Session()
            if settings.dynamodb_endpoint:
                kwargs["endpoint_url"] = settings.dynamodb_endpoint
                if session.get_credentials() is None:
                    kwargs.update(LOCAL_CREDENTIALS)
            _clients[key] = session.client("dynamodb", **kwargs)
    return _clients[key]


def repository(settings: Settings) -> Any:
    """A RestaurantRepository on the writer client (one botocore client per process, not two)."""
    from cachewarm.repository import RestaurantRepository

    return RestaurantRepository(writer_client(settings), settings.table_name)


def ensure_table(settings: Settings, *, create: bool) -> None:
    """Create the table (and wait for it), or check that it exists (TableNotFoundError with its hint)."""
    repo = repository(settings)
    if create:
        repo.create_table(wait=True)
    else:
        repo.describe()


def reset() -> None:
    """Forget every cached client (tests)."""
    with _lock:
        _clients.clear()

"""Change data capture: the table's stream records become cache invalidations.

The team's own application writes ``Restaurants`` directly, in any language, so
the cache cannot rely on writes made through cachewarm. DynamoDB Streams sees
every write; on AWS a Lambda function reads the stream (:func:`lambda_handler`),
and on one machine ``cachewarm feed follow`` reads the same API from the dynalite
launcher (:mod:`cachewarm.stream_poller`). Both hand batches of records to
:func:`handle_records`, in the record shape of AWS's Lambda events.

``KEYS_ONLY`` is enough, because every item's keys name its restaurant:

* a restaurant item: ``PK = SK = REST#<name>``;
* a review item: ``PK = USER#<user>``, ``SK = REST#<restaurant>``.

Anything else (the benchmark's ``BENCH#`` runs, foreign items) touches no
summary: it is ignored and counted. A batch's names are deduplicated and
invalidated in one Redis round trip, which also voids their fill leases and
starts a short hold-off (``CACHE_CHANGE_HOLD_OFF_MS``): GSI1 is eventually
consistent, so a fill that starts right after the invalidation could read the
pre-write reviews; during the hold-off reads are served from DynamoDB but never
stored. When Redis cannot be reached, every record that named a restaurant is
reported failed by sequence number (Lambda's ``ReportBatchItemFailures``), so
the batch is delivered again; invalidating twice is harmless.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cachewarm.model import RESTAURANT_PREFIX, USER_PREFIX
from cachewarm.settings import Settings, get_settings

if TYPE_CHECKING:
    from redis.client import Pipeline

    from cachewarm.cache import CacheAside

log = logging.getLogger(__name__)

#: Lag samples kept for ``cachewarm stats`` (newest first), and at most this many from one batch.
LAG_SAMPLES_KEPT = 1000
LAG_SAMPLES_PER_BATCH = 100
#: The lag samples expire with the per-minute counters.
LAG_TTL_SECONDS = 25 * 3600


def _string(attribute: Any) -> str | None:
    """The text of a DynamoDB ``{"S": ...}`` attribute, else None."""
    if isinstance(attribute, Mapping):
        value = attribute.get("S")
        return value if isinstance(value, str) else None
    return None


def restaurant_of(keys: Mapping[str, Any]) -> str | None:
    """The restaurant an item's keys name, or None for items that feed no summary."""
    pk, sk = _string(keys.get("PK")), _string(keys.get("SK"))
    if pk is None or sk is None or not sk.startswith(RESTAURANT_PREFIX):
        return None
    name = sk[len(RESTAURANT_PREFIX):]
    if not name:
        return None
    if pk == sk or pk.startswith(USER_PREFIX):  # the restaurant item, or a review of it
        return name
    return None


def created_at(record: Mapping[str, Any]) -> float | None:
    """``ApproximateCreationDateTime`` in epoch seconds (a number in Lambda events, a datetime in boto3)."""
    value = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


@dataclass
class BatchOutcome:
    """What one batch of stream records did."""

    records: int = 0
    ignored: int = 0
    names: list[str] = field(default_factory=list)
    removed: int = 0
    #: Sequence numbers of the records to deliver again (Redis was unreachable).
    failed: list[str] = field(default_factory=list)
    #: Write-to-invalidation lag of each record that named a restaurant, in milliseconds.
    lag_ms: list[float] = field(default_factory=list)
    error: str | None = None


def handle_records(
    records: Iterable[Mapping[str, Any]],
    engine: CacheAside,
    *,
    hold_off_ms: int,
    clock: Callable[[], float] = time.time,
) -> BatchOutcome:
    """Invalidate every restaurant the records name, in one round trip; never raises for Redis."""
    from redis.exceptions import RedisError

    outcome = BatchOutcome()
    touched: list[tuple[str, str, float | None]] = []  # (name, sequence number, created at)
    for record in records:
        outcome.records += 1
        change = record.get("dynamodb", {})
        name = restaurant_of(change.get("Keys", {}))
        if name is None:
            outcome.ignored += 1
            continue
        touched.append((name, str(change.get("SequenceNumber", "")), created_at(record)))
    outcome.names = list(dict.fromkeys(name for name, _, _ in touched))

    def bookkeeping(pipe: Pipeline) -> None:
        # Rides in the invalidation's own round trip: counters and lag samples.
        now = clock()
        outcome.lag_ms = [max(0.0, (now - ts) * 1000.0) for _, _, ts in touched if ts is not None]
        engine.metrics.queue_incr(pipe, {"feed_records": outcome.records, "feed_ignored": outcome.ignored,
                                         "feed_invalidated": len(outcome.names)})
        samples = outcome.lag_ms[:LAG_SAMPLES_PER_BATCH]
        if samples:
            lag_key = engine.keys.stats("feed:lag")
            pipe.lpush(lag_key, *(f"{lag:.1f}" for lag in samples))
            pipe.ltrim(lag_key, 0, LAG_SAMPLES_KEPT - 1)
            pipe.expire(lag_key, LAG_TTL_SECONDS)

    if not outcome.names:
        engine.metrics.incr_many({"feed_records": outcome.records, "feed_ignored": outcome.ignored})
        return outcome
    try:
        outcome.removed = engine.invalidate_many(outcome.names, hold_off_ms=hold_off_ms, also=bookkeeping)
    except (RedisError, OSError) as exc:
        # Nothing is lost: these records are delivered again, and a second invalidation is harmless.
        outcome.failed = [sequence for _, sequence, _ in touched]
        outcome.error = f"{type(exc).__name__}: {exc}"
        log.warning("change feed: could not invalidate %d names (%s); %d records will be retried",
                    len(outcome.names), outcome.error, len(outcome.failed))
    return outcome


# --- the Lambda function (AWS) -------------------------------------------------------------------


def with_auth_token(url: str, token: str, username: str | None = None) -> str:
    """``url`` with ``token`` as its password (and ``username``), unless the URL carries credentials already.

    The same rule as the image's entrypoint (``infra/docker/entrypoint.sh``):
    ``rediss://host:6379/0`` becomes ``rediss://:TOKEN@host:6379/0``, or with an ACL user
    ``rediss://USER:PASSWORD@host:6379/0``.
    """
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" in parts.netloc or parts.scheme == "unix":
        return url
    user = quote(username, safe="") if username else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(token, safe='')}@{parts.netloc}"))


def credentials(secret: str) -> tuple[str | None, str]:
    """``(username, password)`` from a secret's string.

    The stack's secrets are JSON, ``{"username": "cache", "password": "..."}`` (an ElastiCache RBAC user);
    anything else is a bare AUTH token (no user name).
    """
    import json

    try:
        value = json.loads(secret)
    except ValueError:
        return None, secret
    if isinstance(value, dict) and isinstance(value.get("password"), str):
        username = value.get("username")
        return (username if isinstance(username, str) and username else None), value["password"]
    return None, secret


def _secret_token(arn: str) -> str:
    """The secret's string: JSON credentials or a bare token (see :func:`credentials`)."""
    import boto3

    return boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]


@functools.cache
def _lambda_engine(pid: int) -> tuple[CacheAside, Settings]:
    """The function's engine, built once per execution environment (the cold start)."""
    from cachewarm import service

    settings = get_settings()
    if settings.redis_auth_secret_arn:
        username, token = credentials(_secret_token(settings.redis_auth_secret_arn))
        settings = dataclasses.replace(
            settings,
            redis_url=with_auth_token(settings.redis_url, token, username),
            cache_redis_url=(
                with_auth_token(settings.cache_redis_url, token, username) if settings.cache_redis_url else None
            ),
        )
    return service.engine(settings), settings


def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Entry point of the change-feed Lambda (DynamoDB Streams event source, ReportBatchItemFailures)."""
    engine, settings = _lambda_engine(os.getpid())
    outcome = handle_records(event.get("Records", []), engine, hold_off_ms=settings.change_hold_off_ms)
    log.info("change feed: %d records, %d ignored, %d names invalidated (%d removed), %d failed",
             outcome.records, outcome.ignored, len(outcome.names), outcome.removed, len(outcome.failed))
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in outcome.failed]}

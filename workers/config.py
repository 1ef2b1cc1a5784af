"""Celery configuration, derived from the project's one settings object.

:func:`celery_config` turns :class:`~cachewarm.settings.Settings` into Celery
settings. The app evaluates it lazily, on first use of its configuration; a bad
setting then ends the process with one line naming the variable and exit code 2.
"""

from __future__ import annotations

from typing import Any

from kombu import Queue

from cachewarm.clients import REDIS_PROTOCOL
from cachewarm.settings import Settings
from workers.schedule import beat_schedule

#: Queues and the tasks routed to each. A worker with no -Q consumes them all.
QUEUES = ("warm", "maintenance", "load", "bench")
ROUTES = {
    "cachewarm.warm_names": "warm",
    "cachewarm.warm_hot": "warm",
    "cachewarm.invalidate_stale": "maintenance",
    "cachewarm.bulk_load": "load",
    "cachewarm.load_chunk": "load",
    "cachewarm.merge_load": "load",  # the chord callback of a bulk load (workers/fanout.py)
    "cachewarm.run_benchmark": "bench",
}

# Longest hard time limit of any task. The broker's visibility timeout
# (BROKER_VISIBILITY_TIMEOUT_SECONDS, default 3600) must be longer, or Redis
# redelivers a task that is still running (and longer than any countdown or
# retry backoff, which are capped far below it).
TASK_TIME_LIMIT = 1800


def _restore_interval(visibility_timeout: int) -> int:
    """Seconds between kombu's sweeps for unacknowledged messages older than the visibility timeout.

    A killed worker's task is handed out again only by such a sweep (one runs when a
    worker starts, then every interval x 10 seconds). kombu's 10 s default suits the
    default timeout; a short timeout gets proportionally frequent sweeps.
    """
    return max(1, min(10, visibility_timeout // 100))


def _sweep_mutex_expire(visibility_timeout: int) -> int:
    """Seconds a sweep's mutex outlives a worker that died holding it.

    kombu takes a mutex in Redis around each sweep (``unacked_mutex_expire``, default
    300 s). A worker SIGKILLed mid-sweep leaves it behind, and until it expires no
    other worker sweeps: redelivery of every lost task waits. 300 s is kept for the
    default timeout; a short timeout gets a mutex no longer than half of it (a sweep
    itself takes milliseconds: at most ``unacked_restore_limit`` messages).
    """
    return max(2, min(300, visibility_timeout // 2))


def _tls_options(url: str) -> dict[str, Any] | None:
    """Certificate checks for a ``rediss://`` URL that does not spell them out.

    Celery refuses a ``rediss://`` broker or result backend without
    ``ssl_cert_reqs`` in the URL (ElastiCache hands out exactly such URLs);
    redis-py and redbeat verify by default. Verify here too, against the
    system's trust store (``SSL_CERT_FILE``) unless the URL names ``ssl_ca_certs``.
    """
    import ssl
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    if parts.scheme != "rediss" or "ssl_cert_reqs" in parse_qs(parts.query):
        return None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def _with_protocol(url: str) -> str:
    """``url`` with ``protocol=`` :data:`~cachewarm.clients.REDIS_PROTOCOL` in its query.

    Celery's Redis result backend has no setting for the protocol; it hands the
    URL's query arguments to redis-py. (kombu, the broker, has neither: its
    connections use redis-py's default, the same RESP3; see cachewarm/clients.py.)
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "protocol"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("protocol", str(REDIS_PROTOCOL))])))


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting the project uses, for ``settings``."""
    tls = _tls_options(settings.broker_url)
    return {
        **({"broker_use_ssl": tls, "redis_backend_use_ssl": tls} if tls else {}),
        "broker_url": settings.broker_url,
        "result_backend": _with_protocol(settings.broker_url),
        "result_expires": 24 * 3600,
        "result_extended": True,  # Flower and `celery result` show names and arguments
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.broker_visibility_timeout,
            "unacked_restore_interval": _restore_interval(settings.broker_visibility_timeout),
            "unacked_mutex_expire": _sweep_mutex_expire(settings.broker_visibility_timeout),
            "socket_timeout": 10,
            "socket_connect_timeout": 10,
            "health_check_interval": 25,
        },
        "result_backend_transport_options": {"retry_policy": {"timeout": 5.0}},
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "warm",
        "task_routes": {name: {"queue": queue} for name, queue in ROUTES.items()},
        "task_time_limit": TASK_TIME_LIMIT,
        "task_soft_time_limit": TASK_TIME_LIMIT - 60,
        "task_track_started": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        # Long tasks and fair dispatch: a worker process takes one task at a time.
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": True,
        # Beat: celery-redbeat keeps the schedule in Redis behind a lock, so a
        # second beat process waits instead of dispatching every period twice.
        # The lock is renewed every loop; a dead beat's lock expires after
        # redbeat_lock_timeout and the standby takes over.
        "beat_scheduler": "workers.beat:RedBeatScheduler",  # redbeat that survives a Redis restart
        "beat_max_loop_interval": 5,
        "redbeat_redis_url": settings.broker_url,
        # Passed to redis-py as they are (redbeat >= 2.4), but for redbeat's own retry_period.
        "redbeat_redis_options": {"retry_period": 60, "protocol": REDIS_PROTOCOL},
        "redbeat_key_prefix": f"{settings.key_prefix}:redbeat",
        "redbeat_lock_timeout": 30,
        "beat_schedule": beat_schedule(settings),
    }

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
from workers.retry import LONGEST_COUNTDOWN
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

#: Hard time limits, seconds, per task. Each is several times the task's
#: longest legitimate run on AWS or dynalite, and short enough that a lost node
#: costs minutes (the visibility arithmetic below):
#:
#: * ``bulk_load`` reads the whole input once to plan the chunks (a sequential
#:   scan: a GB file at 10 MB/s from S3 in 100 s) and may create the table;
#: * ``load_chunk`` writes CHUNK_LINES (5,000) lines: 1-3 s at the 2,000-4,000
#:   items/s measured here, so 120 s still passes at about 40 items/s (throttled);
#: * ``run_benchmark`` reads each sampled name three times: 50 names take about a
#:   second, the maximum sample (5,000) about 75 s;
#: * ``merge_load`` joins the chunks' reports and rejects files;
#: * ``warm_names`` warms at most 100 names with WARM_CONCURRENCY reads in flight
#:   (under a second; 60 s leaves room for botocore's own retries);
#: * ``warm_hot`` and ``invalidate_stale`` read a bounded sample and send tasks.
TIME_LIMITS = {
    "cachewarm.bulk_load": 120,
    "cachewarm.load_chunk": 120,
    "cachewarm.run_benchmark": 120,
    "cachewarm.merge_load": 60,
    "cachewarm.warm_names": 60,
    "cachewarm.warm_hot": 30,
    "cachewarm.invalidate_stale": 60,
}
#: The longest hard limit; also the default for a task not listed above.
TASK_TIME_LIMIT = max(TIME_LIMITS.values())
#: Seconds a broker delivery may age beyond (longest hard limit + longest
#: countdown) before another worker gets it: the round trips around a run (the
#: fetch, the ack), an ETA'd retry that waits for a free pool process, and clock
#: differences between the hosts (kombu stamps a delivery with the consuming
#: host's clock and the sweeping host compares with its own).
VISIBILITY_MARGIN = 60
#: kombu sweeps for unacknowledged deliveries older than the visibility timeout at most this often.
SWEEP_SECONDS = 10
#: A sweep's Redis mutex outlives a worker that died holding it at most this long.
SWEEP_MUTEX_SECONDS = 30


def soft_time_limit(hard: int) -> int:
    """The soft limit for a hard limit: the task gets SoftTimeLimitExceeded a little before it is killed."""
    return hard - max(5, hard // 10)


def default_visibility_timeout() -> int:
    """The broker's visibility timeout that no task outlives: longest hard limit + longest countdown + margin.

    A delivery stays unacknowledged (acks_late) in kombu's ``unacked`` hash from
    the moment a worker takes it until the task ends, and that includes a
    retry's countdown (an ETA task is taken at once and held until it is due).
    Older than the visibility timeout, it is handed to another worker: so the
    timeout must exceed ``TASK_TIME_LIMIT`` (120) + ``LONGEST_COUNTDOWN`` (60:
    the transport retries' backoff cap; a lost pool process waits 2 s) +
    ``VISIBILITY_MARGIN`` (60) = 240 s. The setting's default
    (``BROKER_VISIBILITY_TIMEOUT_SECONDS``, cachewarm/settings.py) is this number,
    written out because the core does not import workers; a unit test keeps them equal.
    """
    return TASK_TIME_LIMIT + LONGEST_COUNTDOWN + VISIBILITY_MARGIN


def _restore_interval(visibility_timeout: int) -> int:
    """Seconds between kombu's sweeps for unacknowledged messages older than the visibility timeout.

    A killed worker's task is handed out again only by such a sweep: one when a
    worker starts, then one every ``unacked_restore_interval`` x
    ``unacked_restore_throttle`` seconds (kombu's default 10 x 10 = 100 s). We set
    the throttle to 1, so this interval alone is the period: SWEEP_SECONDS, or a
    quarter of a short timeout (the tests'). A sweep is one ZRANGE on a small
    sorted set, cheap at this rate.
    """
    return max(1, min(SWEEP_SECONDS, visibility_timeout // 4))


def _sweep_mutex_expire(visibility_timeout: int) -> int:
    """Seconds a sweep's mutex outlives a worker that died holding it.

    kombu takes a mutex in Redis around each sweep (``unacked_mutex_expire``,
    default 300 s). A worker SIGKILLed mid-sweep leaves it behind, and until it
    expires no other worker sweeps: redelivery of every lost task waits. A sweep
    takes milliseconds (at most ``unacked_restore_limit`` messages), and two
    overlapping sweeps are harmless (each restore is a WATCHed transaction that
    removes the message from the index), so the mutex is short:
    SWEEP_MUTEX_SECONDS, or half of a short timeout.
    """
    return max(2, min(SWEEP_MUTEX_SECONDS, visibility_timeout // 2))


def _time_limit_annotations() -> dict[str, dict[str, int]]:
    """``task_annotations`` giving each task its hard and soft time limit (set on the task class at bind)."""
    return {name: {"time_limit": hard, "soft_time_limit": soft_time_limit(hard)}
            for name, hard in TIME_LIMITS.items()}


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
            "unacked_restore_throttle": 1,  # the interval alone sets the sweep period
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
        "task_soft_time_limit": soft_time_limit(TASK_TIME_LIMIT),
        "task_annotations": _time_limit_annotations(),
        # A pool process that dies under a task (WorkerLostError) re-sends it after
        # default_retry_delay, counted against max_retries (workers/retry.py): a
        # poison task stops after WORKER_LOST_RETRIES + 1 runs.
        "task_retry_on_worker_lost": True,
        "task_track_started": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        # Fair dispatch: a worker process takes one task at a time, and the worker
        # fetches only while a process is free (Redis only; celery/worker/consumer/
        # tasks.py). A lost node then holds only the tasks it was running, and a
        # delivery's age is its run time, which the visibility arithmetic assumes.
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
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

"""The one settings object. The environment is read here and nowhere else.

Every field has a default and says why it is what it is. A bad value raises
:class:`~cachewarm.errors.ConfigError` naming the variable, which the CLI and the
Celery app turn into one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

from cachewarm.errors import ConfigError

REDIS_SCHEMES = ("redis", "rediss", "unix")

#: Environment variables this project reads, by settings field. Tooling (compose
#: checks, docs) imports this rather than repeating the names.
ENV_VARS: dict[str, str] = {
    "redis_url": "REDIS_URL",
    "cache_redis_url": "CACHE_REDIS_URL",
    "redis_hostname": "REDIS_HOSTNAME",
    "dynamodb_endpoint": "AWS_ENDPOINT_URL_DYNAMODB",
    "aws_region": "AWS_REGION",
    "table_name": "TABLE_NAME",
    "cache_ttl": "CACHE_TTL_SECONDS",
    "cache_ttl_jitter": "CACHE_TTL_JITTER",
    "negative_ttl": "CACHE_NEGATIVE_TTL_SECONDS",
    "redis_timeout": "REDIS_TIMEOUT_SECONDS",
    "cache_backoff": "CACHE_BACKOFF_SECONDS",
    "lease_ms": "CACHE_LEASE_MS",
    "lease_wait_ms": "CACHE_LEASE_WAIT_MS",
    "key_prefix": "CACHE_KEY_PREFIX",
    "hot_sample_rate": "HOT_SAMPLE_RATE",
    "dynamodb_max_attempts": "DYNAMODB_MAX_ATTEMPTS",
    "warm_hot_schedule": "WARM_HOT_SCHEDULE",
    "warm_hot_top_k": "WARM_HOT_TOP_K",
    "warm_concurrency": "WARM_CONCURRENCY",
    "invalidate_stale_schedule": "INVALIDATE_STALE_SCHEDULE",
    "benchmark_schedule": "BENCHMARK_SCHEDULE",
    "benchmark_sample": "BENCHMARK_SAMPLE",
    "load_schedule": "LOAD_SCHEDULE",
    "load_schedule_file": "LOAD_SCHEDULE_FILE",
    "dynamodb_timeout": "DYNAMODB_TIMEOUT_SECONDS",
    "broker_visibility_timeout": "BROKER_VISIBILITY_TIMEOUT_SECONDS",
    "task_ledger": "CACHEWARM_TASK_LEDGER",
    # Flower reads these same names itself; workers/flowerconfig.py validates them here.
    "flower_basic_auth": "FLOWER_BASIC_AUTH",
    "flower_address": "FLOWER_ADDRESS",
    "flower_port": "FLOWER_PORT",
}


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :func:`get_settings` or :meth:`from_env`."""

    # Broker, and the cache unless cache_redis_url is set. The local default is a
    # conventional single-machine Redis; the local stack exports its own URL.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # A separate cache instance, for teams that keep the broker apart from the cache.
    cache_redis_url: str | None = None
    # The original demo's variable, host[:port]; used only when REDIS_URL is unset.
    redis_hostname: str | None = None
    # botocore's own variable; None means real AWS.
    dynamodb_endpoint: str | None = None
    # Region for DynamoDB; dynalite ignores it but botocore insists on one.
    aws_region: str = "us-east-1"
    table_name: str = "Restaurants"
    # Summary TTL, as the original demo had (15 minutes).
    cache_ttl: int = 900
    # TTLs get up to this fraction added at random so keys filled together expire apart.
    cache_ttl_jitter: float = 0.1
    # "Not found" is cached briefly: long enough to absorb a burst, short enough
    # that a newly loaded restaurant shows up soon.
    negative_ttl: int = 60
    # Socket and connect timeout for the cache's Redis. Bounds how long a read can
    # wait before it falls back to DynamoDB.
    redis_timeout: float = 0.5
    # After a cache failure, skip the cache for this long instead of paying the
    # timeout on every read (a small circuit breaker).
    cache_backoff: float = 2.0
    # A fill lease lives this long: longer than a slow DynamoDB read, short enough
    # that a crashed filler does not block others for long.
    lease_ms: int = 3000
    # Callers that lose the lease poll for the winner's value this long, then read
    # DynamoDB themselves without filling.
    lease_wait_ms: int = 2000
    # Namespace for every key we own; SCAN only ever matches below it.
    key_prefix: str = "cw"
    # Fraction of cache reads that also count toward hot keys and hit ratio. The
    # count rides in the read's pipeline, so 1.0 costs no extra round trip.
    hot_sample_rate: float = 1.0
    # botocore "standard" retry mode attempts, for throttling and transport errors.
    dynamodb_max_attempts: int = 6
    # botocore connect and read timeout.
    dynamodb_timeout: float = 5.0
    # Redis broker: a task a worker took but never acknowledged (acks_late; the
    # worker was killed) goes back to the queue after this many seconds. It must
    # exceed the longest task (the 1800 s hard time limit) and any retry
    # countdown, or a task still running is delivered twice; lower it only to get
    # a killed worker's tasks back sooner where tasks are short (the tests).
    broker_visibility_timeout: int = 3600
    # Append one JSON line per task start and end (task id, name, pid) to this
    # file, from every worker process. Off by default; the reliability tests use
    # it to count lost and duplicated executions.
    task_ledger: str | None = None
    # Beat schedules: seconds between runs, a 5-field crontab ("m h dom mon dow",
    # UTC), or "off". Warming every 3 minutes refreshes hot keys well inside the
    # 15-minute TTL; stale checks run every minute; the benchmark once a day.
    warm_hot_schedule: str = "180"
    # How many of the hottest names a scheduled warm refreshes.
    warm_hot_top_k: int = 100
    # DynamoDB reads in flight per warm task (threads). Enough to hide the
    # read latency; the reads are I/O-bound, so threads beat more processes.
    warm_concurrency: int = 8
    invalidate_stale_schedule: str = "60"
    benchmark_schedule: str = "0 4 * * *"
    # Restaurants sampled by the scheduled benchmark.
    benchmark_sample: int = 50
    # Optional scheduled reload (cachewarm.bulk_load) of a file path or s3:// URI
    # that the workers can read; off unless both are set.
    load_schedule: str = "off"
    load_schedule_file: str | None = None
    # Flower's logins, "user:password[,user2:password2]" (Flower's own format). Unset
    # means Flower refuses to start from workers/flowerconfig.py; `cachewarm stack up`
    # generates one. Kept out of repr() so a printed Settings never shows it.
    flower_basic_auth: str | None = field(default=None, repr=False)
    # Flower listens on loopback unless told otherwise: it can revoke and terminate tasks.
    flower_address: str = "127.0.0.1"
    flower_port: int = 5555

    @property
    def flower_logins(self) -> list[str]:
        """Flower's ``basic_auth`` option: one ``user:password`` per login."""
        if not self.flower_basic_auth:
            return []
        return [item.strip() for item in self.flower_basic_auth.split(",") if item.strip()]

    @property
    def broker_url(self) -> str:
        """Celery's broker URL."""
        return self.redis_url

    @property
    def cache_url(self) -> str:
        """The Redis URL used for cached summaries."""
        return self.cache_redis_url or self.redis_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default ``os.environ``), validating every value."""
        env = os.environ if env is None else env
        defaults = {f.name: f.default for f in fields(cls)}

        def raw(field: str) -> str | None:
            value = env.get(ENV_VARS[field])
            return value.strip() if value is not None and value.strip() != "" else None

        hostname = raw("redis_hostname")
        redis_url = raw("redis_url")
        if redis_url is None and hostname is not None:
            redis_url = _url_from_hostname(hostname)
        redis_url = _redis_url(ENV_VARS["redis_url"], redis_url or defaults["redis_url"])
        cache_url = raw("cache_redis_url")
        if cache_url is not None:
            cache_url = _redis_url(ENV_VARS["cache_redis_url"], cache_url)

        endpoint = raw("dynamodb_endpoint")
        if endpoint is not None:
            _http_url(ENV_VARS["dynamodb_endpoint"], endpoint)
        region = raw("aws_region") or env.get("AWS_DEFAULT_REGION", "").strip() or defaults["aws_region"]

        table = raw("table_name") or defaults["table_name"]
        _table_name(ENV_VARS["table_name"], table)

        def number(field: str, kind: type, minimum: float, maximum: float | None = None):
            value = raw(field)
            if value is None:
                return defaults[field]
            return _number(ENV_VARS[field], value, kind, minimum, maximum)

        def schedule(field: str) -> str:
            value = raw(field) or defaults[field]
            return _schedule(ENV_VARS[field], value)

        prefix = raw("key_prefix") or defaults["key_prefix"]
        if not prefix.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(ENV_VARS["key_prefix"], prefix, "use letters, digits, '-' or '_' only")

        return cls(
            redis_url=redis_url,
            cache_redis_url=cache_url,
            redis_hostname=hostname,
            dynamodb_endpoint=endpoint,
            aws_region=region,
            table_name=table,
            cache_ttl=number("cache_ttl", int, 1),
            cache_ttl_jitter=number("cache_ttl_jitter", float, 0.0, 1.0),
            negative_ttl=number("negative_ttl", int, 1),
            redis_timeout=number("redis_timeout", float, 0.01, 60),
            cache_backoff=number("cache_backoff", float, 0.0, 3600),
            lease_ms=number("lease_ms", int, 10),
            lease_wait_ms=number("lease_wait_ms", int, 0),
            key_prefix=prefix,
            hot_sample_rate=number("hot_sample_rate", float, 0.0, 1.0),
            dynamodb_max_attempts=number("dynamodb_max_attempts", int, 1, 20),
            dynamodb_timeout=number("dynamodb_timeout", float, 0.1, 300),
            broker_visibility_timeout=number("broker_visibility_timeout", int, 1, 7 * 24 * 3600),
            task_ledger=raw("task_ledger"),
            warm_hot_schedule=schedule("warm_hot_schedule"),
            warm_hot_top_k=number("warm_hot_top_k", int, 1, 100_000),
            warm_concurrency=number("warm_concurrency", int, 1, 256),
            invalidate_stale_schedule=schedule("invalidate_stale_schedule"),
            benchmark_schedule=schedule("benchmark_schedule"),
            benchmark_sample=number("benchmark_sample", int, 1, 100_000),
            load_schedule=schedule("load_schedule"),
            load_schedule_file=raw("load_schedule_file"),
            flower_basic_auth=_basic_auth(ENV_VARS["flower_basic_auth"], raw("flower_basic_auth")),
            flower_address=_address(ENV_VARS["flower_address"], raw("flower_address") or defaults["flower_address"]),
            flower_port=number("flower_port", int, 1, 65535),
        )


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings.from_env()


def _url_from_hostname(hostname: str) -> str:
    host, _, port = hostname.partition(":")
    if not host or (port and not port.isdigit()):
        raise ConfigError(ENV_VARS["redis_hostname"], hostname, "expected host or host:port")
    return f"redis://{host}:{port or 6379}/0"


def _redis_url(variable: str, value: str) -> str:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ConfigError(variable, value, str(exc)) from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(variable, value, "scheme must be redis://, rediss:// or unix://")
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigError(variable, value, "unix:// needs a socket path")
    elif not parts.hostname:
        raise ConfigError(variable, value, "missing host")
    elif port is not None and not 0 < port < 65536:
        raise ConfigError(variable, value, "port out of range")
    db = parts.path.lstrip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise ConfigError(variable, value, "the path must be a database number such as /0")
    from urllib.parse import parse_qs

    cert_reqs = [v.lower() for v in parse_qs(parts.query).get("ssl_cert_reqs", [])]
    if parts.scheme == "rediss" and set(cert_reqs) & {"none", "cert_none", "optional", "cert_optional"}:
        # A server whose certificate we cannot verify is never used: it may be anyone.
        raise ConfigError(variable, value, "ssl_cert_reqs must be 'required' (certificates are always verified); "
                                           "for a private CA add ssl_ca_certs=/path/ca.pem")
    return value


def _http_url(variable: str, value: str) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ConfigError(variable, value, str(exc)) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, value, "expected an http:// or https:// URL")


def _table_name(variable: str, value: str) -> None:
    allowed = value.replace("_", "").replace("-", "").replace(".", "")
    if not 3 <= len(value) <= 255 or not allowed.isalnum() or not allowed.isascii():
        raise ConfigError(variable, value, "DynamoDB table names are 3-255 characters of a-z A-Z 0-9 _ - .")


def _basic_auth(variable: str, value: str | None) -> str | None:
    if value is None:
        return None
    for login in value.split(","):
        user, sep, password = login.strip().partition(":")
        if not (user and sep and password):
            # Never echo the value: it holds passwords.
            raise ConfigError(variable, "***", "expected user:password (several separated by commas)")
    return value


def _address(variable: str, value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if not all(label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
               for label in labels):
        raise ConfigError(variable, value, "expected an IP address such as 127.0.0.1 or a host name")
    return value


def parse_schedule(value: str) -> float | tuple[str, ...] | None:
    """``"off"`` -> None, ``"300"`` -> 300.0 seconds, a crontab -> its 5 fields."""
    value = value.strip()
    if value.lower() in ("off", "none", "disabled", "0"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        fields_ = tuple(value.split())
        if len(fields_) != 5 or not all(set(f) <= set("0123456789*/,-") for f in fields_):
            raise ValueError("expected seconds, a 5-field crontab such as '*/5 * * * *', or 'off'") from None
        return fields_
    if seconds < 1:
        raise ValueError("an interval must be at least 1 second")
    return seconds


def _schedule(variable: str, value: str) -> str:
    try:
        parse_schedule(value)
    except ValueError as exc:
        raise ConfigError(variable, value, str(exc)) from None
    return value


def _number(variable: str, value: str, kind: type, minimum: float, maximum: float | None):
    try:
        parsed = kind(value)
    except ValueError:
        raise ConfigError(variable, value, f"expected {'an integer' if kind is int else 'a number'}") from None
    if parsed < minimum or (maximum is not None and parsed > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(variable, value, f"must be {bound}")
    return parsed

"""The one settings object. The environment is read here and nowhere else.

Each setting is declared once, as a field of :class:`Settings`: its default is
the field's default, and :func:`setting` puts the rest in the field's metadata
(the environment variable, bounds, validator and a line of help, see
:class:`Spec`). :meth:`Settings.from_env` reads every field by its spec;
:data:`ENV_VARS`, :data:`SPECS`, the README check and the CDK app derive from
the same declarations. A bad value raises :class:`~cachewarm.errors.ConfigError`
naming the variable, which the CLI and the Celery app turn into one line on
stderr and exit code 2.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from cachewarm.errors import ConfigError

REDIS_SCHEMES = ("redis", "rediss", "unix")

#: A validator: ``check(variable, value)`` returns the value to keep or raises ConfigError naming ``variable``.
Check = Callable[[str, str], str]
T = TypeVar("T")
_SPEC = "cachewarm.setting"


@dataclass(frozen=True)
class Spec:
    """How one setting is read from the environment (a field's metadata, see :func:`setting`)."""

    env: str  # the variable
    help: str  # one line, for docs and tools
    default: Any  # the field's default (the same literal, kept here for tools that read specs)
    kind: type  # int or float: the text is parsed and bounded; str: kept as text
    minimum: float | None = None
    maximum: float | None = None
    check: Check | None = None  # a named validator for what the bounds cannot say
    # Read when ``env`` is unset (or blank), turned into this setting's value by ``from_fallback``.
    fallback: str | None = None
    from_fallback: Check | None = None

    def read(self, lookup: Callable[[str], str | None]) -> Any:
        """This setting's value from ``lookup(variable)`` (stripped text, None when unset), validated."""
        value = lookup(self.env)
        if value is None and self.fallback is not None:
            value = lookup(self.fallback)
            if value is not None and self.from_fallback is not None:
                value = self.from_fallback(self.fallback, value)
        if value is None:
            return self.default
        if self.kind in (int, float):
            return _number(self.env, value, self.kind, self.minimum, self.maximum)
        return self.check(self.env, value) if self.check is not None else value


def setting(
    default: T,
    env: str,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    check: Check | None = None,
    fallback: str | None = None,
    from_fallback: Check | None = None,
    repr: bool = True,
) -> T:
    """A :class:`Settings` field read from ``env``; its kind (int, float or text) is its default's type."""
    kind = type(default) if default is not None else str
    if kind not in (int, float, str) or ((minimum is not None or maximum is not None) and kind is str):
        raise TypeError(f"{env}: bounds need an int or float default, got {default!r}")
    spec = Spec(env, help, default, kind, minimum, maximum, check, fallback, from_fallback)
    return field(default=default, repr=repr, metadata={_SPEC: spec})


# --- validators (named in the fields below) ----------------------------------------------------


def _url_from_hostname(variable: str, hostname: str) -> str:
    host, _, port = hostname.partition(":")
    if not host or (port and not port.isdigit()):
        raise ConfigError(variable, hostname, "expected host or host:port")
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
    cert_reqs = [v.lower() for v in parse_qs(parts.query).get("ssl_cert_reqs", [])]
    if parts.scheme == "rediss" and set(cert_reqs) & {"none", "cert_none", "optional", "cert_optional"}:
        # A server whose certificate we cannot verify is never used: it may be anyone.
        raise ConfigError(variable, value, "ssl_cert_reqs must be 'required' (certificates are always verified); "
                                           "for a private CA add ssl_ca_certs=/path/ca.pem")
    return value


def _http_url(variable: str, value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ConfigError(variable, value, str(exc)) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, value, "expected an http:// or https:// URL")
    return value


def _table_name(variable: str, value: str) -> str:
    allowed = value.replace("_", "").replace("-", "").replace(".", "")
    if not 3 <= len(value) <= 255 or not allowed.isalnum() or not allowed.isascii():
        raise ConfigError(variable, value, "DynamoDB table names are 3-255 characters of a-z A-Z 0-9 _ - .")
    return value


def _redis_mode(variable: str, value: str) -> str:
    if value not in ("standalone", "cluster"):
        raise ConfigError(variable, value, "expected standalone or cluster")
    return value


def _key_prefix(variable: str, value: str) -> str:
    if not value.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(variable, value, "use letters, digits, '-' or '_' only")
    return value


def _basic_auth(variable: str, value: str) -> str:
    for login in value.split(","):
        user, sep, password = login.strip().partition(":")
        if not (user and sep and password):
            # Never echo the value: it holds passwords.
            raise ConfigError(variable, "***", "expected user:password (several separated by commas)")
    return value


def _address(variable: str, value: str) -> str:
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


def _number(variable: str, value: str, kind: type, minimum: float | None, maximum: float | None) -> Any:
    try:
        parsed = kind(value)
    except ValueError:
        raise ConfigError(variable, value, f"expected {'an integer' if kind is int else 'a number'}") from None
    # Written as "not within", so that NaN (which compares false to everything) is out of bounds too.
    if (minimum is not None and not parsed >= minimum) or (maximum is not None and not parsed <= maximum):
        if minimum is not None and maximum is not None:
            bound = f"between {minimum} and {maximum}"
        else:
            bound = f"at least {minimum}" if minimum is not None else f"at most {maximum}"
        raise ConfigError(variable, value, f"must be {bound}")
    return parsed


# --- the settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :func:`get_settings` or :meth:`from_env`."""

    # Broker, and the cache unless cache_redis_url is set. The local default is a
    # conventional single-machine Redis; the local stack exports its own URL.
    # The original demo's REDIS_HOSTNAME (host[:port]) stands in when REDIS_URL is unset.
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0", "REDIS_URL", "broker, and the cache unless CACHE_REDIS_URL is set",
        check=_redis_url, fallback="REDIS_HOSTNAME", from_fallback=_url_from_hostname)
    # A separate cache instance, for teams that keep the broker apart from the cache.
    cache_redis_url: str | None = setting(None, "CACHE_REDIS_URL", "a separate Redis for the cache",
                                          check=_redis_url)
    # "cluster": CACHE_REDIS_URL names any node of a Redis Cluster (ElastiCache cluster
    # mode, ElastiCache Serverless). The broker (REDIS_URL) stays one node: kombu's
    # Redis transport cannot use a cluster (celery/kombu#2204).
    cache_redis_mode: str = setting("standalone", "CACHE_REDIS_MODE", "standalone, or cluster for the cache",
                                    check=_redis_mode)
    # Kept as given; redis_url reads it (and validates it) only when REDIS_URL is unset.
    redis_hostname: str | None = setting(None, "REDIS_HOSTNAME", "the original demo's host[:port]")
    # botocore's own variable; None means real AWS.
    dynamodb_endpoint: str | None = setting(None, "AWS_ENDPOINT_URL_DYNAMODB", "a local DynamoDB endpoint",
                                            check=_http_url)
    # botocore's own variable for the Streams endpoint; None means real AWS. The local
    # stack points it at the dynalite launcher, which serves the Streams API too.
    streams_endpoint: str | None = setting(None, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
                                           "a local DynamoDB Streams endpoint", check=_http_url)
    # Where the change-feed Lambda finds the cache's AUTH token (Secrets Manager); it is
    # spliced into the Redis URLs at cold start. The containers get it from their entrypoint.
    redis_auth_secret_arn: str | None = setting(None, "REDIS_AUTH_SECRET_ARN",
                                                "secret holding the Redis AUTH token (the Lambda)")
    # The local change-feed poller's pause between empty GetRecords calls (AWS Lambda
    # polls a shard four times a second).
    feed_poll_seconds: float = setting(0.25, "FEED_POLL_SECONDS", "pause between empty polls of the local feed",
                                       minimum=0.01, maximum=60)
    # Region for DynamoDB; dynalite ignores it but botocore insists on one.
    aws_region: str = setting("us-east-1", "AWS_REGION", "DynamoDB's region", fallback="AWS_DEFAULT_REGION")
    table_name: str = setting("Restaurants", "TABLE_NAME", "the DynamoDB table", check=_table_name)
    # Summary TTL, as the original demo had (15 minutes).
    cache_ttl: int = setting(900, "CACHE_TTL_SECONDS", "summary TTL", minimum=1)
    # TTLs get up to this fraction added at random so keys filled together expire apart.
    cache_ttl_jitter: float = setting(0.1, "CACHE_TTL_JITTER", "fraction added to each TTL at random",
                                      minimum=0.0, maximum=1.0)
    # "Not found" is cached briefly: long enough to absorb a burst, short enough
    # that a newly loaded restaurant shows up soon.
    negative_ttl: int = setting(60, "CACHE_NEGATIVE_TTL_SECONDS", "TTL of a cached 'not found'", minimum=1)
    # Socket and connect timeout for the cache's Redis. Bounds how long a read can
    # wait before it falls back to DynamoDB.
    redis_timeout: float = setting(0.5, "REDIS_TIMEOUT_SECONDS", "socket and connect timeout of the cache's Redis",
                                   minimum=0.01, maximum=60)
    # After a cache failure, skip the cache for this long instead of paying the
    # timeout on every read (a small circuit breaker).
    cache_backoff: float = setting(2.0, "CACHE_BACKOFF_SECONDS", "after a cache failure, skip the cache this long",
                                   minimum=0.0, maximum=3600)
    # A fill lease lives this long unless renewed. Its holder renews it every third of
    # that while its DynamoDB read is in flight, however long the read takes; a holder
    # that dies stops renewing, and a waiter takes over when the lease lapses. Waiters
    # wait as long as a live lease exists, up to the DynamoDB client's own read budget
    # (DYNAMODB_MAX_ATTEMPTS and DYNAMODB_TIMEOUT_SECONDS, see cachewarm/leases.py).
    lease_ms: int = setting(3000, "CACHE_LEASE_MS", "fill lease lifetime between renewals", minimum=10)
    # Fills from DynamoDB in flight at once, across every process sharing the cache.
    # When the whole cache is lost, readers beyond it wait for a slot or for the
    # value: DynamoDB sees at most this many reads at once from cache misses
    # (warm tasks have their own bound, WARM_CONCURRENCY per task). 0: no cap.
    max_fills: int = setting(64, "CACHE_MAX_FILLS", "cache fills from DynamoDB in flight, across all processes",
                             minimum=0, maximum=100_000)
    # After an invalidation that came from the table's change feed, fills are served
    # but not stored for this long: GSI1 is eventually consistent on AWS, so a fill
    # that starts right after the invalidation can still read the old reviews. Must
    # exceed the index's lag (typically well under a second); 0 turns it off.
    change_hold_off_ms: int = setting(2000, "CACHE_CHANGE_HOLD_OFF_MS",
                                      "after a change-feed invalidation, fills are not stored this long",
                                      minimum=0, maximum=60_000)
    # The near cache (cachewarm/near_cache.py): entries kept in each process, invalidated by
    # the server's CLIENT TRACKING pushes. 0 (default) turns it off.
    local_max_items: int = setting(0, "CACHE_LOCAL_MAX_ITEMS", "summaries kept in each process (near cache; 0: off)",
                                   minimum=0, maximum=10_000_000)
    # Namespace for every key we own; SCAN only ever matches below it.
    key_prefix: str = setting("cw", "CACHE_KEY_PREFIX", "key namespace", check=_key_prefix)
    # Fraction of cache reads that also count toward hot keys and hit ratio. The
    # count rides in the read's pipeline, so 1.0 costs no extra round trip.
    hot_sample_rate: float = setting(1.0, "HOT_SAMPLE_RATE", "fraction of reads counted toward hot keys",
                                     minimum=0.0, maximum=1.0)
    # botocore "standard" retry mode attempts, for throttling and transport errors.
    dynamodb_max_attempts: int = setting(6, "DYNAMODB_MAX_ATTEMPTS", "botocore standard-mode attempts",
                                         minimum=1, maximum=20)
    # botocore connect and read timeout.
    dynamodb_timeout: float = setting(5.0, "DYNAMODB_TIMEOUT_SECONDS", "botocore connect and read timeout",
                                      minimum=0.1, maximum=300)
    # Redis broker: a task a worker took but never acknowledged (acks_late; the
    # whole worker was lost) goes back to the queue after this many seconds. It
    # must exceed the age a delivery can reach while its task is still alive, or
    # a running task is delivered twice: the longest hard time limit (120 s) +
    # the longest countdown a task waits unacknowledged (60 s, the retry backoff
    # cap) + a 60 s margin = 240 s (workers/config.py default_visibility_timeout;
    # a unit test keeps the two equal). A lost node's tasks then run again within
    # about 240 s + one 10 s sweep. Lower it only where tasks are shorter (the tests).
    broker_visibility_timeout: int = setting(
        240, "BROKER_VISIBILITY_TIMEOUT_SECONDS", "an unacknowledged task is redelivered after this long",
        minimum=1, maximum=7 * 24 * 3600)
    # Append one JSON line per task start and end (task id, name, pid) to this
    # file, from every worker process. Off by default; the reliability tests use
    # it to count lost and duplicated executions.
    task_ledger: str | None = setting(None, "CACHEWARM_TASK_LEDGER", "a file of task starts and ends (tests)")
    # Beat schedules: seconds between runs, a 5-field crontab ("m h dom mon dow",
    # UTC), or "off". Warming every 3 minutes refreshes hot keys well inside the
    # 15-minute TTL; stale checks run every minute; the benchmark once a day.
    warm_hot_schedule: str = setting("180", "WARM_HOT_SCHEDULE", "when beat warms the hot keys", check=_schedule)
    # How many of the hottest names a scheduled warm refreshes.
    warm_hot_top_k: int = setting(100, "WARM_HOT_TOP_K", "hot names a scheduled warm refreshes",
                                  minimum=1, maximum=100_000)
    # DynamoDB reads in flight per warm task (threads). Enough to hide the
    # read latency; the reads are I/O-bound, so threads beat more processes.
    warm_concurrency: int = setting(8, "WARM_CONCURRENCY", "DynamoDB reads in flight per warm task",
                                    minimum=1, maximum=256)
    # The consistency audit (cachewarm.invalidate_stale) re-reads this many cached
    # summaries from DynamoDB per run: its cost is O(sample), never O(cache).
    audit_sample: int = setting(20, "AUDIT_SAMPLE_SIZE", "cached summaries the audit re-reads per run",
                                minimum=1, maximum=10_000)
    invalidate_stale_schedule: str = setting("60", "INVALIDATE_STALE_SCHEDULE", "when beat checks for stale values",
                                             check=_schedule)
    benchmark_schedule: str = setting("0 4 * * *", "BENCHMARK_SCHEDULE", "when beat runs the benchmark",
                                      check=_schedule)
    # Restaurants sampled by the scheduled benchmark.
    benchmark_sample: int = setting(50, "BENCHMARK_SAMPLE", "restaurants the scheduled benchmark samples",
                                    minimum=1, maximum=100_000)
    # Optional scheduled reload (cachewarm.bulk_load) of a file path or s3:// URI
    # that the workers can read; off unless both are set.
    load_schedule: str = setting("off", "LOAD_SCHEDULE", "when beat reloads LOAD_SCHEDULE_FILE", check=_schedule)
    load_schedule_file: str | None = setting(None, "LOAD_SCHEDULE_FILE", "a path or s3:// URI beat reloads")
    # Flower's logins, "user:password[,user2:password2]" (Flower's own format). Unset
    # means Flower refuses to start from workers/flowerconfig.py; `cachewarm stack up`
    # generates one. Kept out of repr() so a printed Settings never shows it, and
    # never echoed in an error. Flower reads these three names itself;
    # workers/flowerconfig.py validates them here.
    flower_basic_auth: str | None = setting(None, "FLOWER_BASIC_AUTH", "Flower's user:password logins",
                                            check=_basic_auth, repr=False)
    # Flower listens on loopback unless told otherwise: it can revoke and terminate tasks.
    flower_address: str = setting("127.0.0.1", "FLOWER_ADDRESS", "Flower's listen address", check=_address)
    flower_port: int = setting(5555, "FLOWER_PORT", "Flower's port", minimum=1, maximum=65535)

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
        source = os.environ if env is None else env

        def lookup(variable: str) -> str | None:
            value = source.get(variable)
            return value.strip() if value is not None and value.strip() != "" else None

        settings = cls(**{name: spec.read(lookup) for name, spec in SPECS.items()})
        if settings.cache_redis_mode == "cluster" and not settings.cache_redis_url:
            raise ConfigError("CACHE_REDIS_MODE", "cluster", "needs CACHE_REDIS_URL (a node of the cluster); "
                              "REDIS_URL is the broker, which must be a single node")
        return settings


#: Every setting's spec, by field, in declaration order.
SPECS: dict[str, Spec] = {f.name: f.metadata[_SPEC] for f in fields(Settings)}

#: Environment variables this project reads, by settings field. Tooling (compose
#: checks, docs, the CDK app) imports this rather than repeating the names.
ENV_VARS: dict[str, str] = {name: spec.env for name, spec in SPECS.items()}


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings.from_env()

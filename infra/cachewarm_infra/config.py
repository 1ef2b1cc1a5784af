"""Deployment settings, read from CDK context (``-c key=value`` or ``cdk.json``) in one place.

Every key is optional. ``-c`` values arrive as strings, ``cdk.json`` values may be typed, so every
parser accepts both. A bad value raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aws_cdk import RemovalPolicy

from cachewarm.errors import ConfigError as AppConfigError
from cachewarm.settings import ENV_VARS, SPECS

#: The app's settings the context sets, and their defaults (cachewarm.settings declares them).
_TABLE = SPECS["table_name"]
_TTL = SPECS["cache_ttl"]
#: The app has no upper bound on its TTL; a deployment caps it at 30 days.
MAX_CACHE_TTL_SECONDS = 30 * 86400
#: The stack leaves CACHE_TTL_JITTER at the app's default: a summary lives at most TTL x (1 + this).
_TTL_JITTER = SPECS["cache_ttl_jitter"].default

#: Change capture (DynamoDB Streams -> Lambda): the limits of a stream event source mapping.
MAX_CHANGE_BATCH_SIZE = 10_000
MAX_CHANGE_BATCH_WINDOW_SECONDS = 300
MAX_CHANGE_RETRY_ATTEMPTS = 10_000
MIN_RECORD_AGE_SECONDS = 60
#: The mapping accepts up to 7 days, but a DynamoDB stream keeps records for 24 hours only.
MAX_RECORD_AGE_SECONDS = 86_400
DEFAULT_RECORD_AGE_SECONDS = 3600
#: A fill may land a little after the read it stores; cachewarm.cache allows a minute for that too.
_FILL_MARGIN_SECONDS = 60


def least_record_age(cache_ttl_seconds: int) -> int:
    """The youngest stream record the change-capture mapping may drop unprocessed, in seconds.

    A summary is cached for at most the TTL plus the app's full jitter, from a fill that lands at most
    a minute after its read. Once a record is older than that, every summary cached before its write
    has expired, so dropping the record leaves nothing stale (``changeMaxRecordAgeSeconds`` must be at
    least this).
    """
    return math.ceil(round(cache_ttl_seconds * (1 + _TTL_JITTER), 6)) + _FILL_MARGIN_SECONDS


class ConfigError(ValueError):
    """A context value that cannot be used; the message names the key."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        super().__init__(f"context {key}={value!r}: {reason}")
        self.key = key


class CacheEngine(Enum):
    """ElastiCache's engine: Valkey (the default) or Redis OSS. Both speak the same protocol."""

    VALKEY = "valkey"
    REDIS = "redis"


#: Each engine's default version, and the versions accepted (ElastiCache's node-based clusters offer
#: Valkey 7.2, 8.0 and 8.1, and Redis OSS up to 7.1, the last Redis OSS release ElastiCache offers).
DEFAULT_ENGINE_VERSIONS = {CacheEngine.VALKEY: "8.0", CacheEngine.REDIS: "7.1"}
_ENGINE_VERSION_RE = {
    CacheEngine.VALKEY: (re.compile(r"^(7\.2|8\.\d+)$"), "a Valkey 7.2 or 8.x version such as 8.0"),
    CacheEngine.REDIS: (
        re.compile(r"^(6\.2|7\.\d+)$"),
        "a Redis OSS 6.2 or 7.x version such as 7.1 (the users' channel permissions need 6.2)",
    ),
}


class CacheMode(Enum):
    """Where the cache lives. ``node``: one node-based replication group is broker and cache (the default).
    ``serverless`` / ``cluster``: the cache on ElastiCache Serverless for Valkey / a cluster-mode-enabled
    replication group (the app's ``CACHE_REDIS_MODE=cluster``), the broker on its own small node group
    (Celery's broker cannot live on a Redis Cluster: kombu issue #2204)."""

    NODE = "node"
    SERVERLESS = "serverless"
    CLUSTER = "cluster"

    @property
    def split(self) -> bool:
        """Broker and cache on separate ElastiCache resources."""
        return self is not CacheMode.NODE


#: ElastiCache Serverless usage limits (CacheUsageLimits maxima) and cluster shard counts ElastiCache accepts.
MAX_SERVERLESS_ECPU_PER_SECOND = 15_000_000
MIN_SERVERLESS_ECPU_PER_SECOND = 1000
MAX_SERVERLESS_STORAGE_GB = 5000
MAX_CACHE_SHARDS = 500


class Mode(Enum):
    """Deployment shape. ``demo`` reproduces the original single-node cluster."""

    PRODUCTION = "production"
    DEMO = "demo"


#: Context keys this app reads, with a one-line description. docs/deploying.md lists the same keys.
CONTEXT_KEYS: dict[str, str] = {
    "mode": "production (default) or demo",
    "stackName": "CloudFormation stack name (default Cachewarm, or CachewarmDemo in demo mode)",
    "vpcId": "existing VPC id; with privateSubnetIds it is imported offline, alone it is looked up",
    "vpcName": "existing VPC Name tag, looked up (needs AWS credentials at synth)",
    "privateSubnetIds": "comma-separated private subnet ids of vpcId (offline import)",
    "availabilityZones": "comma-separated AZs of privateSubnetIds, in the same order (optional)",
    "vpcCidr": "CIDR of an imported VPC (Flower then accepts connections from it), or of the created one",
    "peerSecurityGroupId": "comma-separated security groups allowed to reach Redis and Flower",
    "redisPort": "Redis port (default 6379)",
    "cacheNodeType": "ElastiCache node type (default cache.t4g.small; demo cache.t3.small)",
    "cacheEngine": "valkey (default) or redis (Redis OSS); demo mode defaults to redis, the original design",
    "cacheEngineVersion": "engine version: valkey 7.2, 8.0 (default) or 8.x; redis 6.2 or 7.x (default 7.1)",
    "redisEngineVersion": "deprecated: the same as cacheEngine=redis with cacheEngineVersion",
    "replicasPerShard": "read replicas in production mode (default 1, at least 1 for failover); per shard with "
    "cacheMode=cluster",
    "cacheMode": "node (default: one replication group for broker and cache), serverless (cache on ElastiCache "
    "Serverless for Valkey) or cluster (cache on a cluster-mode-enabled replication group)",
    "cacheShards": "shards (node groups) of the cache with cacheMode=cluster (default 2)",
    "brokerNodeType": "node type of the broker's own replication group with cacheMode=serverless|cluster "
    "(default cache.t4g.small)",
    "serverlessMaxEcpuPerSecond": "ECPU/s ceiling of the serverless cache (default 50000)",
    "serverlessMaxStorageGb": "data storage ceiling of the serverless cache in GB (default 10)",
    "cacheSnapshotRetentionDays": "days of automatic snapshots kept for each cache and broker (default 3; 0 = none)",
    "tableName": f"DynamoDB table name, {_TABLE.env} for the workers (default {_TABLE.default})",
    "removalPolicy": "retain or destroy, for the table (default retain; demo destroy)",
    "workerMinCount": "minimum worker tasks (default 1)",
    "workerMaxCount": "maximum worker tasks (default 6; demo 2)",
    "workerCpu": "worker task CPU units (default 1024)",
    "workerMemory": "worker task memory MiB (default 2048)",
    "cacheTtlSeconds": f"{_TTL.env} for the workers (default {_TTL.default})",
    "logRetentionDays": "CloudWatch Logs retention (default 30)",
    "changeBatchSize": "stream records per change-capture invocation (default 100)",
    "changeBatchWindowSeconds": "seconds the change-capture mapping may wait to fill a batch (default 0)",
    "changeMaxRetryAttempts": "retries of a failing change-capture batch before the failure queue (default 10)",
    "changeMaxRecordAgeSeconds": "older stream records go to the failure queue unprocessed (default 3600; "
    "at least cacheTtlSeconds + 10 % + 60)",
    "changeIteratorAgeAlarmSeconds": "alarm when the change-capture lag exceeds this (default 60)",
    "loadBuckets": "comma-separated S3 buckets the workers may read load files from (s3://BUCKET/KEY; default none)",
}

_SUBNET_RE = re.compile(r"^subnet-[0-9a-f]+$")
_SG_RE = re.compile(r"^sg-[0-9a-f]+$")
_VPC_RE = re.compile(r"^vpc-[0-9a-f]+$")
_CIDR_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")
#: S3 bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens, a letter or digit at each end.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, kw_only=True)
class InfraConfig:
    """Everything the stack needs to know, with production defaults."""

    mode: Mode = Mode.PRODUCTION
    stack_name: str = "Cachewarm"
    # Network: at most one of these shapes applies (see cachewarm_infra.network).
    vpc_id: str | None = None
    vpc_name: str | None = None
    private_subnet_ids: tuple[str, ...] = ()
    availability_zones: tuple[str, ...] = ()
    vpc_cidr: str | None = None
    peer_security_group_ids: tuple[str, ...] = ()
    # Cache.
    redis_port: int = 6379
    cache_node_type: str = "cache.t4g.small"
    cache_engine: CacheEngine = CacheEngine.VALKEY
    cache_engine_version: str = "8.0"
    replicas_per_shard: int = 1
    cache_mode: CacheMode = CacheMode.NODE
    cache_shards: int = 2
    broker_node_type: str = "cache.t4g.small"
    serverless_max_ecpu_per_second: int = 50_000
    serverless_max_storage_gb: int = 10
    snapshot_retention_days: int = 3
    # Table.
    table_name: str = _TABLE.default
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    # Workers.
    worker_min_count: int = 1
    worker_max_count: int = 6
    worker_cpu: int = 1024
    worker_memory: int = 2048
    cache_ttl_seconds: int = _TTL.default
    log_retention_days: int = 30
    #: S3 buckets whose objects the workers (and one-off ``cachewarm load`` tasks) may read.
    load_buckets: tuple[str, ...] = ()
    # Change capture (the table's stream -> the invalidation function).
    change_batch_size: int = 100
    change_batch_window_seconds: int = 0
    change_max_retry_attempts: int = 10
    change_max_record_age_seconds: int = DEFAULT_RECORD_AGE_SECONDS
    change_iterator_age_alarm_seconds: int = 60

    @property
    def demo(self) -> bool:
        return self.mode is Mode.DEMO

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> InfraConfig:
        """Build the config from a context getter such as ``app.node.try_get_context``."""

        def text(key: str) -> str | None:
            value = get(key)
            if value is None:
                return None
            value = str(value).strip()
            return value or None

        def listing(key: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
            value = get(key)
            if value is None:
                return ()
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            items = tuple(str(item).strip() for item in items if str(item).strip())
            for item in items:
                if pattern is not None and not pattern.match(item):
                    raise ConfigError(key, item, f"does not look like {pattern.pattern}")
            return items

        def integer(key: str, default: int, minimum: int, maximum: int) -> int:
            value = text(key)
            if value is None:
                return default
            try:
                parsed = int(value)
            except ValueError:
                raise ConfigError(key, value, "expected an integer") from None
            if not minimum <= parsed <= maximum:
                raise ConfigError(key, value, f"must be between {minimum} and {maximum}")
            return parsed

        def app_setting(key: str, field: str, value: str | None) -> Any:
            """``value`` validated as the app will validate it, so a bad one fails at synth, not at start."""
            try:
                return SPECS[field].read(lambda variable: value if variable == ENV_VARS[field] else None)
            except AppConfigError as exc:
                raise ConfigError(key, value, str(exc)) from None

        raw_mode = (text("mode") or "production").lower()
        raw_mode = {"prod": "production"}.get(raw_mode, raw_mode)
        try:
            mode = Mode(raw_mode)
        except ValueError:
            raise ConfigError("mode", raw_mode, "expected production or demo") from None
        demo = mode is Mode.DEMO

        vpc_id = text("vpcId")
        if vpc_id is not None and not _VPC_RE.match(vpc_id):
            raise ConfigError("vpcId", vpc_id, "expected vpc-…")
        subnets = listing("privateSubnetIds", _SUBNET_RE)
        if subnets and vpc_id is None:
            raise ConfigError("privateSubnetIds", ",".join(subnets), "needs vpcId as well")
        zones = listing("availabilityZones")
        if zones and len(subnets) % len(zones) != 0:
            raise ConfigError("availabilityZones", ",".join(zones), "subnet count must be a multiple of it")
        vpc_cidr = text("vpcCidr")
        if vpc_cidr is not None and (not _CIDR_RE.match(vpc_cidr) or vpc_cidr.endswith("/0")):
            raise ConfigError("vpcCidr", vpc_cidr, "expected the VPC's CIDR, such as 10.0.0.0/16")

        removal = (text("removalPolicy") or ("destroy" if demo else "retain")).lower()
        policies = {"retain": RemovalPolicy.RETAIN, "destroy": RemovalPolicy.DESTROY}
        if removal not in policies:
            raise ConfigError("removalPolicy", removal, "expected retain or destroy")

        worker_min = integer("workerMinCount", 1, 0, 100)
        worker_max = integer("workerMaxCount", 2 if demo else 6, 1, 200)
        if worker_max < max(worker_min, 1):
            raise ConfigError("workerMaxCount", worker_max, "must be at least workerMinCount and 1")

        cache_engine, engine_version = _cache_engine(text, demo)
        cache_mode = _cache_mode(text, demo, cache_engine)

        cache_ttl = integer("cacheTtlSeconds", _TTL.default, int(_TTL.minimum), MAX_CACHE_TTL_SECONDS)
        # A record may be dropped only once every summary it could have made stale has expired. With
        # a TTL longer than the stream keeps records (24 h), the 24 h are the best there is.
        least_age = min(least_record_age(cache_ttl), MAX_RECORD_AGE_SECONDS)
        record_age = integer(
            "changeMaxRecordAgeSeconds",
            max(DEFAULT_RECORD_AGE_SECONDS, least_age),
            MIN_RECORD_AGE_SECONDS,
            MAX_RECORD_AGE_SECONDS,
        )
        if record_age < least_age:
            raise ConfigError(
                "changeMaxRecordAgeSeconds",
                record_age,
                f"must be at least {least_age}, the longest a summary can stay cached (cacheTtlSeconds "
                f"{cache_ttl} plus {_TTL_JITTER:.0%} jitter plus {_FILL_MARGIN_SECONDS} s for a late fill): "
                "a younger record may still describe a cached summary",
            )
        iterator_age_alarm = integer("changeIteratorAgeAlarmSeconds", 60, 1, MAX_RECORD_AGE_SECONDS)
        if iterator_age_alarm >= record_age:
            raise ConfigError(
                "changeIteratorAgeAlarmSeconds",
                iterator_age_alarm,
                f"must be below changeMaxRecordAgeSeconds ({record_age}), or records are dropped before it fires",
            )

        load_buckets = listing("loadBuckets")
        for bucket in load_buckets:
            if not _BUCKET_RE.match(bucket) or ".." in bucket:
                raise ConfigError("loadBuckets", bucket, "expected a bucket name such as my-loads, not a URI or ARN")

        return cls(
            mode=mode,
            stack_name=text("stackName") or ("CachewarmDemo" if demo else "Cachewarm"),
            vpc_id=vpc_id,
            vpc_name=text("vpcName"),
            private_subnet_ids=subnets,
            availability_zones=zones,
            vpc_cidr=vpc_cidr,
            peer_security_group_ids=listing("peerSecurityGroupId", _SG_RE),
            redis_port=integer("redisPort", 6379, 1024, 65535),
            cache_node_type=text("cacheNodeType") or ("cache.t3.small" if demo else "cache.t4g.small"),
            cache_engine=cache_engine,
            cache_engine_version=engine_version,
            replicas_per_shard=integer("replicasPerShard", 1, 1, 5),
            cache_mode=cache_mode,
            cache_shards=integer("cacheShards", 2, 1, MAX_CACHE_SHARDS),
            broker_node_type=text("brokerNodeType") or "cache.t4g.small",
            serverless_max_ecpu_per_second=integer(
                "serverlessMaxEcpuPerSecond", 50_000, MIN_SERVERLESS_ECPU_PER_SECOND, MAX_SERVERLESS_ECPU_PER_SECOND
            ),
            serverless_max_storage_gb=integer("serverlessMaxStorageGb", 10, 1, MAX_SERVERLESS_STORAGE_GB),
            snapshot_retention_days=integer("cacheSnapshotRetentionDays", 3, 0, 35),
            table_name=app_setting("tableName", "table_name", text("tableName")),
            removal_policy=policies[removal],
            worker_min_count=worker_min,
            worker_max_count=worker_max,
            worker_cpu=integer("workerCpu", 1024, 256, 16384),
            worker_memory=integer("workerMemory", 2048, 512, 122880),
            cache_ttl_seconds=cache_ttl,
            log_retention_days=integer("logRetentionDays", 30, 1, 3653),
            change_batch_size=integer("changeBatchSize", 100, 1, MAX_CHANGE_BATCH_SIZE),
            change_batch_window_seconds=integer("changeBatchWindowSeconds", 0, 0, MAX_CHANGE_BATCH_WINDOW_SECONDS),
            change_max_retry_attempts=integer("changeMaxRetryAttempts", 10, 0, MAX_CHANGE_RETRY_ATTEMPTS),
            change_max_record_age_seconds=record_age,
            change_iterator_age_alarm_seconds=iterator_age_alarm,
            load_buckets=tuple(dict.fromkeys(load_buckets)),
        )


def _cache_engine(text: Callable[[str], str | None], demo: bool) -> tuple[CacheEngine, str]:
    """``cacheEngine`` and ``cacheEngineVersion``, with the old ``redisEngineVersion`` read as redis + version.

    Production defaults to Valkey; demo mode to Redis OSS 7.1, the original design's engine.
    """
    raw_engine = text("cacheEngine")
    legacy = text("redisEngineVersion")
    version = text("cacheEngineVersion")
    if raw_engine is not None:
        try:
            engine = CacheEngine(raw_engine.lower())
        except ValueError:
            raise ConfigError("cacheEngine", raw_engine, "expected valkey or redis") from None
    else:
        engine = CacheEngine.REDIS if demo or legacy is not None else CacheEngine.VALKEY
    key = "cacheEngineVersion"
    if legacy is not None:
        if version is not None:
            raise ConfigError("redisEngineVersion", legacy, "replaced by cacheEngineVersion; give only that one")
        if engine is not CacheEngine.REDIS:
            raise ConfigError(
                "redisEngineVersion", legacy, "is a Redis OSS version; with cacheEngine=valkey use cacheEngineVersion"
            )
        key, version = "redisEngineVersion", legacy
    version = version or DEFAULT_ENGINE_VERSIONS[engine]
    pattern, expected = _ENGINE_VERSION_RE[engine]
    if not pattern.match(version):
        raise ConfigError(key, version, f"expected {expected} (cacheEngine={engine.value})")
    return engine, version


def _cache_mode(text: Callable[[str], str | None], demo: bool, engine: CacheEngine) -> CacheMode:
    """``cacheMode``: node (default), serverless or cluster; the scaled-out modes need production mode."""
    raw = (text("cacheMode") or "node").lower()
    try:
        mode = CacheMode(raw)
    except ValueError:
        raise ConfigError("cacheMode", raw, "expected node, serverless or cluster") from None
    if mode.split and demo:
        # Demo mode is the original design's single node without TLS or users; a Redis Cluster client
        # and the split broker/cache users need production mode's TLS and RBAC.
        raise ConfigError("cacheMode", raw, "needs mode=production (TLS and RBAC users); demo mode is one node")
    if mode is CacheMode.SERVERLESS and engine is not CacheEngine.VALKEY:
        reason = "the serverless cache is ElastiCache Serverless for Valkey; drop cacheEngine=redis"
        raise ConfigError("cacheMode", raw, reason)
    return mode

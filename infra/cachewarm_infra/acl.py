"""The Redis/Valkey ACL users of a production deployment, as access strings, written once.

The stack creates them as ElastiCache RBAC users (:mod:`cachewarm_infra.cache`), and
``tests/integration/test_acl.py`` applies the very same strings with ``ACL SETUSER`` to a local Valkey
8.1 and redis-server 7.0 and runs the cache engine, a Celery worker, beat and Flower through them.
This module is plain Python (no CDK import) so that the integration test can import it.

* ``default``: ElastiCache requires a user named ``default`` in every user group; ours is switched off
  and may run nothing, so a client that does not authenticate (or authenticates without a user name,
  the old AUTH-token way) can do nothing.
* the **broker** user (``REDIS_URL`` of the worker, beat, Flower and one-off ``cachewarm`` tasks):
  Celery, kombu, redbeat and Flower use many key names (queues, ``_kombu.binding.*``, ``unacked*``,
  ``celery-task-meta-*``, redbeat's ``cw:redbeat*``, the load-progress hashes ``cw:v2:load:*``) and the
  pidbox/event channels, so it gets every key and channel and every command except the ``@dangerous``
  category (FLUSH*, KEYS, CONFIG, DEBUG, SHUTDOWN, MIGRATE, ACL...), plus ``INFO`` (read-only server
  statistics). The broker may read cache entries: the isolation this design enforces is the other way.
* the **cache** user (``CACHE_REDIS_URL`` of the same containers, and the change-capture function):
  only the cache's keys, ``~cw:v2:*`` (:class:`cachewarm.keys.KeySchema`'s root: redbeat keeps its
  schedule and lock under ``cw:redbeat:``, outside it) and ``~cw-bench:v2:*`` (the benchmark task's own
  namespace, ``cachewarm.benchmark``), and only the commands the core issues (``cachewarm/``:
  the cache-aside engine and its Lua scripts, hot keys, metrics, invalidation, the audit, ``stats``). It
  cannot touch a queue, redbeat's lock or a task result, subscribe or publish, or run anything
  dangerous. ``SCAN`` is allowed (it only returns names, and the core filters with ``MATCH cw:...``).
* the **metrics** user (the queue-depth function): ``LLEN`` only, on any key; it can learn a list's
  length and nothing else.

``AUTH`` and ``HELLO`` need no permission; ``CLIENT SETINFO`` (redis-py's handshake) is granted on Valkey
so that the server's client list names the library (Redis OSS 7.0/7.1 has no such command). ``INFO`` is in
``@dangerous`` on Redis 7 and Valkey 8 and is granted explicitly: ``cachewarm stats`` reads its memory and
eviction figures (and tolerates a refusal).

**Scaled-out caches** (``cacheMode=serverless|cluster``, :mod:`cachewarm_infra.scaled_cache`): the cache lives on
a Redis Cluster (ElastiCache Serverless, or a cluster-mode-enabled replication group) and the broker on its own
node group. The cache user then talks the cluster protocol (redis-py's ``RedisCluster``): it also needs
:data:`CLUSTER_CACHE_COMMANDS` and drops ``SELECT`` (a cluster has database 0 only). Each group gets only the
users that connect to it: :data:`BROKER_GROUP` on the broker's node group, :data:`CACHE_GROUP` on the cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from cachewarm.keys import KeySchema
from cachewarm.settings import SPECS

#: The cache's key prefix in a deployment: the app's default CACHE_KEY_PREFIX (cachewarm.settings), which
#: the stack does not override.
DEFAULT_KEY_PREFIX: str = SPECS["key_prefix"].default

#: ElastiCache's mandatory user name; ours is off and may run nothing.
DEFAULT_USER = "default"
BROKER_USER = "broker"
CACHE_USER = "cache"
METRICS_USER = "metrics"

DEFAULT_ACCESS = "off -@all"

BROKER_ACCESS = "on ~* &* +@all -@dangerous +info"

#: What the core runs on the cache's Redis, grouped as the code uses it (tests/integration/test_acl.py runs
#: each path as the cache user, so a command missing here fails there).
CACHE_COMMANDS = (
    # connection: health checks, and redis-py's handshake (HELLO needs no permission); SELECT for a
    # CACHE_REDIS_URL naming a database other than 0 (the key pattern applies in every database)
    "ping",
    "client|setname",
    "select",
    # the near cache (CACHE_LOCAL_MAX_ITEMS): CLIENT TRACKING ON BCAST PREFIX <the cache's prefix> on its own
    # RESP3 connection; the invalidations are pushed on that connection (no SUBSCRIBE, no channel access)
    "client|tracking",
    # transactions: pipeline(transaction=True) in hotkeys.py and audit.py
    "multi",
    "exec",
    # Lua (scripts.py): run by SHA, loaded on NOSCRIPT (redis-py's Script); the scripts themselves call
    # GET, SET, EXISTS, DEL, UNLINK, EXPIRE, PEXPIRE and HINCRBY on their declared keys, the fill slots'
    # sorted-set commands below, and TIME (the slots expire by the server's clock, not the clients')
    "evalsha",
    "script|load",
    "time",
    # strings: summaries, leases, version floors, hold-offs, the audit's cursor
    "get",
    "mget",
    "set",
    "exists",
    "del",
    "unlink",
    "expire",
    "pexpire",
    # hashes: per-minute counters (metrics.py), task runs (stats.py)
    "hincrby",
    "hset",
    "hgetall",
    # lists: the change feed's lag samples, the audit's pending keys
    "lpush",
    "rpush",
    "ltrim",
    "lrange",
    # sets: the task-run index (stats.py)
    "sadd",
    "smembers",
    # sorted sets: hot keys (hotkeys.py); the fill slots (scripts.py: ACQUIRE, RENEW, RELEASE, FILL)
    "zincrby",
    "zunionstore",
    "zrevrange",
    "zadd",
    "zrem",
    "zremrangebyscore",
    "zcard",
    "zscore",
    # keyspace and server: invalidate --all and the audit (SCAN MATCH <prefix>:...), stats
    "scan",
    "dbsize",
    "info",
)


#: redis-py's handshake also sends CLIENT SETINFO (and ignores a refusal). Valkey (7.2 and later) knows the
#: command; Redis OSS 7.0/7.1 does not, and an access string naming an unknown command is rejected.
VALKEY_ONLY_CACHE_COMMANDS = ("client|setinfo",)

#: What redis-py's RedisCluster (8.x) sends besides the data commands: COMMAND once at start (its key parser
#: learns every command's key positions from it; found by tests/integration/test_cluster_acl.py), CLUSTER SLOTS
#: to learn the slot map (at start and after a MOVED reply), ASKING before a command redirected by ASK while a
#: slot migrates (online resharding), and READONLY on connections to replicas when reads from replicas are on.
CLUSTER_CACHE_COMMANDS = ("command", "cluster|slots", "asking", "readonly")
#: Standalone-only: a cluster has database 0 only, and ElastiCache Serverless refuses SELECT altogether.
STANDALONE_ONLY_CACHE_COMMANDS = ("select",)

ENGINES = ("valkey", "redis")


def cache_key_patterns(prefix: str = DEFAULT_KEY_PREFIX) -> tuple[str, ...]:
    """The cache user's key patterns: the cache's namespace and the benchmark's (``<prefix>-bench``).

    Not ``<prefix>:*``: redbeat's keys (``<prefix>:redbeat...``, workers/config.py) live under the prefix
    too, and the cache user must not reach beat's lock or schedule.
    """
    if not prefix or any(ch in prefix for ch in " *?[]\\"):
        raise ValueError(f"cache key prefix {prefix!r}: expected a plain prefix such as {DEFAULT_KEY_PREFIX!r}")
    return tuple(f"{KeySchema(prefix=p).root}*" for p in (prefix, f"{prefix}-bench"))


def cache_access(prefix: str = DEFAULT_KEY_PREFIX, engine: str = "valkey", *, cluster: bool = False) -> str:
    """The cache user's access string for the key prefix ``prefix`` (``CACHE_KEY_PREFIX``) on ``engine``.

    ``cluster=True`` is the string for a cache on a Redis Cluster (``CACHE_REDIS_MODE=cluster``).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    commands = CACHE_COMMANDS + (VALKEY_ONLY_CACHE_COMMANDS if engine == "valkey" else ())
    if cluster:
        commands = tuple(c for c in commands if c not in STANDALONE_ONLY_CACHE_COMMANDS) + CLUSTER_CACHE_COMMANDS
    patterns = [f"~{pattern}" for pattern in cache_key_patterns(prefix)]
    return " ".join(["on", *patterns, "-@all", *(f"+{command}" for command in commands)])


METRICS_ACCESS = "on ~* -@all +llen +ping"


@dataclass(frozen=True)
class AclUser:
    """One ACL user: the name clients authenticate with and its access string (no password: ElastiCache
    takes passwords separately, and the stack generates them in Secrets Manager)."""

    name: str
    access: str
    #: The construct id (and the user id's suffix) in the stack.
    role: str


def users(prefix: str = DEFAULT_KEY_PREFIX, engine: str = "valkey", *, cluster: bool = False) -> tuple[AclUser, ...]:
    """Every user on ``engine`` (valkey or redis), ``default`` first; ``cluster``: the cache is a Redis Cluster."""
    return (
        AclUser(DEFAULT_USER, DEFAULT_ACCESS, "Default"),
        AclUser(BROKER_USER, BROKER_ACCESS, "Broker"),
        AclUser(CACHE_USER, cache_access(prefix, engine, cluster=cluster), "Cache"),
        AclUser(METRICS_USER, METRICS_ACCESS, "Metrics"),
    )


#: Who joins which user group. One instance for broker and cache (``cacheMode=node``): everyone. Split
#: (``serverless``, ``cluster``): the broker's node group admits the broker and the metrics user (queue depth),
#: the cache admits only the cache user; ``default`` (off, required by ElastiCache) is in both.
SHARED_GROUP = (DEFAULT_USER, BROKER_USER, CACHE_USER, METRICS_USER)
BROKER_GROUP = (DEFAULT_USER, BROKER_USER, METRICS_USER)
CACHE_GROUP = (DEFAULT_USER, CACHE_USER)

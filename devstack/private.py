"""A private stack: redis-server and dynalite of this process's own, and the environment for them.

The tests and the benchmarks use it (the demo and ``cachewarm stack`` reuse what
runs through :class:`devstack.localstack.LocalStack` instead). Both servers listen
on free loopback ports, never the machine's shared Redis on 6379, and stop when
the block ends. The Redis-protocol server is redis-server or Valkey (``engine``,
see :data:`devstack.localstack.ENGINES`); :class:`PrivateStacks` holds one stack per
engine over a single dynalite, for a test session that runs tests on both, and a
"cluster" stack: the default engine's server as the broker, the cache on a local
3-primary Redis Cluster (:mod:`devstack.redis_cluster`, ``CACHE_REDIS_MODE=cluster``).
:meth:`PrivateStack.environ` gives one user of the stack its own
table, key prefix and Redis database, in an environment scrubbed of every
variable the settings read, so nothing from the caller's shell leaks in.
:func:`use_environ` points this process at such an environment for a block and
resets the core's wiring (:func:`cachewarm.reset`) on the way in and out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cachewarm import reset
from cachewarm.settings import ENV_VARS
from devstack.localstack import DEFAULT_ENGINE, ENGINES, Service, StackError, start_dynalite, start_redis
from devstack.redis_cluster import LocalCluster

#: The stack whose cache is a Redis Cluster (its broker is the default engine's server).
CLUSTER = "cluster"

#: Read by the settings, botocore or Flower: never inherited from the caller's environment.
SCRUBBED = frozenset({*ENV_VARS.values(), "AWS_DEFAULT_REGION", "AWS_PROFILE", "FLOWER_BASIC_AUTH"})
#: dynalite ignores credentials, but botocore signs every request and needs some.
LOCAL_AWS = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def scrubbed_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default ``os.environ``) minus every variable in :data:`SCRUBBED`."""
    environ = os.environ if environ is None else environ
    return {name: value for name, value in environ.items() if name not in SCRUBBED}


@dataclass
class PrivateStack:
    """A Redis-protocol server and a dynalite that this process started, and where they keep their files."""

    redis: Service
    dynalite: Service
    workdir: Path
    #: Which server ``redis`` is: "redis" (redis-server) or "valkey"; "cluster" when the cache is ``cache_cluster``.
    engine: str = DEFAULT_ENGINE
    #: The cache's Redis Cluster, when the cache is not ``redis`` (the broker's server).
    cache_cluster: LocalCluster | None = None

    def environ(
        self, *, table_name: str, key_prefix: str, db: int = 0, base: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The environment for one user of the stack: its table, key prefix and Redis database ``db``.

        ``base`` (default ``os.environ``) is scrubbed of every setting first.
        """
        if not 0 <= db <= 15:
            raise ValueError(f"{self.engine} has databases 0..15, not {db}")
        env = scrubbed_environ(base)
        env.update(
            LOCAL_AWS,
            REDIS_URL=self.redis.url.rsplit("/", 1)[0] + f"/{db}",
            AWS_ENDPOINT_URL_DYNAMODB=self.dynalite.url,
            AWS_ENDPOINT_URL_DYNAMODB_STREAMS=self.dynalite.url,
            TABLE_NAME=table_name,
            CACHE_KEY_PREFIX=key_prefix,
        )
        if self.cache_cluster is not None:  # one database only on a cluster; the key prefix isolates users
            env.update(CACHE_REDIS_URL=self.cache_cluster.url, CACHE_REDIS_MODE="cluster")
        return env

    def stop(self) -> None:
        """Stop both servers (dynalite first: it was started last)."""
        try:
            self.dynalite.stop()
        finally:
            self.redis.stop()


def start_private_stack(
    workdir: Path, *, persist_dynamodb: bool = False, engine: str = DEFAULT_ENGINE,
) -> PrivateStack:
    """Start ``engine``'s server (redis-server by default) and dynalite under ``workdir`` on free ports.

    The caller stops them. Redis persists nothing; dynalite keeps its data on disk
    under ``workdir`` only with ``persist_dynamodb`` (otherwise in memory).
    """
    redis_server = start_redis(workdir / engine, engine=engine)
    try:
        dynalite = start_dynalite(workdir / "dynalite", persist=persist_dynamodb)
    except BaseException:
        redis_server.stop()
        raise
    return PrivateStack(redis_server, dynalite, workdir, engine)


@contextlib.contextmanager
def private_stack(
    workdir: Path, *, persist_dynamodb: bool = False, engine: str = DEFAULT_ENGINE,
) -> Iterator[PrivateStack]:
    """:func:`start_private_stack` for the block; both servers stop when it ends."""
    stack = start_private_stack(workdir, persist_dynamodb=persist_dynamodb, engine=engine)
    try:
        yield stack
    finally:
        stack.stop()


class PrivateStacks:
    """Private stacks that share one in-memory dynalite: one per engine, each started on first use.

    The test session holds one: most tests run on the default engine's stack, the
    engine-matrix tests on each engine's in turn. Tables are per test, so sharing the
    DynamoDB stand-in costs nothing; the Redis-protocol server is what differs.
    :meth:`stop` stops everything; a stack from :meth:`get` must not be stopped alone
    (its dynalite is shared).
    """

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self._dynalite: Service | None = None
        self._stacks: dict[str, PrivateStack] = {}

    def get(self, engine: str = DEFAULT_ENGINE) -> PrivateStack:
        """The stack of ``engine`` (one of :data:`~devstack.localstack.ENGINES`, or ``"cluster"``), started once."""
        if engine == CLUSTER:
            return self._cluster_stack()
        if engine not in ENGINES:
            raise StackError(f"unknown Redis engine {engine!r}: one of {', '.join(ENGINES)}, {CLUSTER}")
        stack = self._stacks.get(engine)
        if stack is None:
            if self._dynalite is None:
                self._dynalite = start_dynalite(self.workdir / "dynalite", persist=False)
            server = start_redis(self.workdir / engine, engine=engine)
            stack = self._stacks[engine] = PrivateStack(server, self._dynalite, self.workdir, engine)
        return stack

    def _cluster_stack(self) -> PrivateStack:
        stack = self._stacks.get(CLUSTER)
        if stack is None:
            broker = self.get(DEFAULT_ENGINE)
            cluster = LocalCluster(self.workdir / CLUSTER).start()
            stack = self._stacks[CLUSTER] = PrivateStack(broker.redis, broker.dynalite, self.workdir, CLUSTER, cluster)
        return stack

    @property
    def started(self) -> list[str]:
        """The engines whose stacks run, in the order they were started."""
        return list(self._stacks)

    def stop(self) -> None:
        """Stop every server: the Redis-protocol ones newest first, then dynalite."""
        try:
            while self._stacks:
                stack = self._stacks.popitem()[1]
                if stack.cache_cluster is not None:
                    stack.cache_cluster.stop()  # its broker is another stack's server, stopped with that one
                else:
                    stack.redis.stop()
        finally:
            if self._dynalite is not None:
                self._dynalite.stop()
                self._dynalite = None


@contextlib.contextmanager
def use_environ(env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Replace ``os.environ`` with ``env`` for the block, then restore it.

    The settings, clients and engines this process built are forgotten on both
    sides (:func:`cachewarm.reset`), so code that reads its settings from the
    environment (the core, the Celery app) sees this stack inside the block and
    the caller's again after it.
    """
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    reset()
    try:
        yield dict(env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset()

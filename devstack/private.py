"""A private stack: redis-server and dynalite of this process's own, and the environment for them.

The tests and the benchmarks use it (the demo and ``cachewarm stack`` reuse what
runs through :class:`devstack.localstack.LocalStack` instead). Both servers listen
on free loopback ports, never the machine's shared Redis on 6379, and stop when
the block ends. :meth:`PrivateStack.environ` gives one user of the stack its own
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
from devstack.localstack import Service, start_dynalite, start_redis

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
    """A redis-server and a dynalite that this process started, and where they keep their files."""

    redis: Service
    dynalite: Service
    workdir: Path

    def environ(
        self, *, table_name: str, key_prefix: str, db: int = 0, base: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The environment for one user of the stack: its table, key prefix and Redis database ``db``.

        ``base`` (default ``os.environ``) is scrubbed of every setting first.
        """
        if not 0 <= db <= 15:
            raise ValueError(f"redis-server has databases 0..15, not {db}")
        env = scrubbed_environ(base)
        env.update(
            LOCAL_AWS,
            REDIS_URL=self.redis.url.rsplit("/", 1)[0] + f"/{db}",
            AWS_ENDPOINT_URL_DYNAMODB=self.dynalite.url,
            AWS_ENDPOINT_URL_DYNAMODB_STREAMS=self.dynalite.url,
            TABLE_NAME=table_name,
            CACHE_KEY_PREFIX=key_prefix,
        )
        return env

    def stop(self) -> None:
        """Stop both servers (dynalite first: it was started last)."""
        try:
            self.dynalite.stop()
        finally:
            self.redis.stop()


def start_private_stack(workdir: Path, *, persist_dynamodb: bool = False) -> PrivateStack:
    """Start redis-server and dynalite under ``workdir`` on free ports; the caller stops them.

    Redis persists nothing; dynalite keeps its data on disk under ``workdir``
    only with ``persist_dynamodb`` (otherwise in memory).
    """
    redis_server = start_redis(workdir / "redis")
    try:
        dynalite = start_dynalite(workdir / "dynalite", persist=persist_dynamodb)
    except BaseException:
        redis_server.stop()
        raise
    return PrivateStack(redis_server, dynalite, workdir)


@contextlib.contextmanager
def private_stack(workdir: Path, *, persist_dynamodb: bool = False) -> Iterator[PrivateStack]:
    """:func:`start_private_stack` for the block; both servers stop when it ends."""
    stack = start_private_stack(workdir, persist_dynamodb=persist_dynamodb)
    try:
        yield stack
    finally:
        stack.stop()


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

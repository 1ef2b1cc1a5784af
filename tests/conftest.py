"""Shared fixtures: real redis-server, dynalite and celery processes on free ports.

One private stack (:func:`devstack.private.private_stack`) serves the session;
nothing here touches the machine's shared Redis on 6379. Each test gets its own
table name, key prefix and Redis database, in an environment scrubbed of every
setting, so tests sharing the session's servers never see each other's data.
Helpers that tests import live in ``tests/support/``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest
import redis

from cachewarm import service, settings
from devstack.localstack import Service
from devstack.private import PrivateStack, private_stack, use_environ
from tests.support.celery_procs import CeleryProcess, celery_argv
from tests.support.cli import run_cli

# Databases 1..15 in turn (0 is left alone): a test's Celery queues never meet another test's.
_databases = itertools.cycle(range(1, 16))


@pytest.fixture(scope="session")
def private(tmp_path_factory) -> Iterator[PrivateStack]:
    """The session's redis-server and in-memory dynalite."""
    with private_stack(tmp_path_factory.mktemp("stack")) as stack:
        yield stack


@pytest.fixture(scope="session")
def redis_server(private) -> Service:
    """The session's private redis-server."""
    return private.redis


@pytest.fixture(scope="session")
def dynalite(private) -> Service:
    """The session's in-memory dynalite."""
    return private.dynalite


@pytest.fixture
def stack_env(private) -> Iterator[dict[str, str]]:
    """This test's environment: the session's servers, a fresh table name, key prefix and Redis database.

    ``os.environ`` is that environment for the test, with the core's wiring reset.
    """
    suffix = uuid.uuid4().hex[:10]
    env = private.environ(table_name=f"Restaurants-{suffix}", key_prefix=f"t{suffix}", db=next(_databases))
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()  # our private server, never the shared one
    with use_environ(env):
        yield env


@pytest.fixture
def live_settings(stack_env) -> settings.Settings:
    """Settings for the live stack of this test."""
    return settings.Settings.from_env(stack_env)


@pytest.fixture
def table(live_settings) -> Iterator:
    """A created table (the repository), deleted after the test."""
    repo = service.repository(live_settings)
    repo.create_table()
    yield repo
    repo.delete_table(wait=False)


@pytest.fixture
def cli():
    """``cli(*args, env=...)`` runs the console script and returns the CompletedProcess."""
    return run_cli


@pytest.fixture
def celery_proc(tmp_path) -> Iterator:
    """Factory: ``celery_proc(["worker", ...], env)`` starts a celery process; all stop at teardown."""
    started: list[CeleryProcess] = []

    def start(args: list[str], env: dict[str, str], *, name: str | None = None) -> CeleryProcess:
        proc = CeleryProcess(celery_argv(*args), env, tmp_path / f"{name or args[0]}-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def worker(celery_proc, stack_env) -> CeleryProcess:
    """A running celery worker (prefork, 2 processes) on this test's stack."""
    proc = celery_proc(
        ["worker", "--loglevel=INFO", "--concurrency=2", "--without-mingle", "--without-gossip",
         f"--hostname=test-{uuid.uuid4().hex[:6]}@%h"],
        stack_env,
    )
    proc.wait_for("ready.")
    return proc


@pytest.fixture
def celery_client(live_settings):
    """A Celery app configured for this test's broker (one process talks to many brokers over a run)."""
    from workers.app import create_app

    client = create_app(live_settings)
    yield client
    client.close()

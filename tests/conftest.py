"""Shared fixtures: real redis-server, dynalite and celery processes on free ports.

One private stack (:class:`devstack.private.PrivateStacks`) serves the session;
nothing here touches the machine's shared Redis on 6379. Each test gets its own
table name, key prefix and Redis database, in an environment scrubbed of every
setting, so tests sharing the session's servers never see each other's data.
Helpers that tests import live in ``tests/support/``.

Engines: the tests marked ``engine_matrix`` (the broker and cache behaviour) run once
on redis-server (Debian's 7.0) and once on Valkey 8.1 (production's engine), ids
``[redis]`` and ``[valkey]``, on two servers sharing the session's dynalite; the rest
run on redis-server. Tests marked ``topology_matrix`` (the cache's behaviour) run once
more, id ``[cluster]``, with the cache on a local 3-primary Redis Cluster
(``CACHE_REDIS_MODE=cluster``) and the broker on redis-server. ``--engine valkey`` (or
``redis``) puts every test's stack on that one engine. Servers a test starts for itself
(``start_redis``, ``RedisProc``: the fault tests' servers that are killed, paused and
restarted) are redis-server either way.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest
import redis

from cachewarm import service, settings
from devstack.localstack import DEFAULT_ENGINE, ENGINES, Service, server_version
from devstack.private import CLUSTER, PrivateStack, PrivateStacks, use_environ
from tests.support.celery_procs import CeleryProcess, celery_argv
from tests.support.cli import run_cli

# Databases 1..15 in turn (0 is left alone): a test's Celery queues never meet another test's.
_databases = itertools.cycle(range(1, 16))


def pytest_addoption(parser):
    parser.addoption("--engine", choices=("both", *ENGINES), default="both",
                     help="Redis-protocol server of the tests' stack: 'both' (default) runs the tests marked "
                          "engine_matrix on redis-server and on Valkey and the others on redis-server; "
                          "'redis' or 'valkey' puts every test's stack on that engine")


def _session_engine(config) -> str:
    """The engine of the tests that are not run on every engine."""
    choice = config.getoption("--engine")
    return DEFAULT_ENGINE if choice == "both" else choice


def pytest_generate_tests(metafunc):
    """Engine-matrix tests run once per engine (ids show it); one chosen ``--engine`` shows in every id."""
    if "engine" not in metafunc.fixturenames:
        return
    choice = metafunc.config.getoption("--engine")
    if choice != "both":
        metafunc.parametrize("engine", [choice], indirect=True)
        return
    stacks = list(ENGINES) if metafunc.definition.get_closest_marker("engine_matrix") else []
    if metafunc.definition.get_closest_marker("topology_matrix"):
        stacks = [*(stacks or [DEFAULT_ENGINE]), CLUSTER]
    if stacks:
        metafunc.parametrize("engine", stacks, indirect=True)


def pytest_report_header(config):
    versions = []
    for engine in ENGINES:
        try:
            versions.append(f"{engine} {server_version(engine)}")
        except Exception as exc:  # a missing server fails the tests that need it, with its own message
            versions.append(f"{engine} unavailable ({exc})")
    choice = config.getoption("--engine")
    where = "engine_matrix tests on each, the others on redis" if choice == "both" else f"every stack on {choice}"
    return f"engines: {', '.join(versions)} (--engine {choice}: {where})"


@pytest.fixture(scope="session")
def private_stacks(tmp_path_factory) -> Iterator[PrivateStacks]:
    """The session's stacks: one in-memory dynalite, and a Redis-protocol server per engine used."""
    stacks = PrivateStacks(tmp_path_factory.mktemp("stack"))
    yield stacks
    stacks.stop()


@pytest.fixture(scope="session")
def private(private_stacks, pytestconfig) -> PrivateStack:
    """The session's redis-server (or the ``--engine`` chosen) and in-memory dynalite."""
    return private_stacks.get(_session_engine(pytestconfig))


@pytest.fixture
def engine(request, pytestconfig) -> str:
    """This test's Redis-protocol server: "redis" or "valkey" (one per run of an engine_matrix test)."""
    return getattr(request, "param", _session_engine(pytestconfig))


@pytest.fixture
def engine_stack(private_stacks, engine) -> PrivateStack:
    """The stack of this test's engine (the session's dynalite, with that engine's server)."""
    return private_stacks.get(engine)


@pytest.fixture(scope="session")
def redis_server(private) -> Service:
    """The session's private redis-server."""
    return private.redis


@pytest.fixture(scope="session")
def dynalite(private) -> Service:
    """The session's in-memory dynalite."""
    return private.dynalite


@pytest.fixture
def stack_env(engine_stack) -> Iterator[dict[str, str]]:
    """This test's environment: the session's servers, a fresh table name, key prefix and Redis database.

    The Redis-protocol server is this test's engine's. ``os.environ`` is that
    environment for the test, with the core's wiring reset.
    """
    suffix = uuid.uuid4().hex[:10]
    env = engine_stack.environ(table_name=f"Restaurants-{suffix}", key_prefix=f"t{suffix}", db=next(_databases))
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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """AWS calls: the processes these fixtures start record theirs (devstack.aws_calls, tests/support).

    The session gets a log of its own, published when it runs the integration or reliability suite; the
    modules that check it (``RUNS_AFTER_RECORDING = True``: tests/infra/test_permissions.py) run last.
    """
    from pathlib import Path

    from devstack import aws_call_log

    recording = [Path(__file__).parent / suite for suite in ("integration", "reliability")]
    if not config.option.collectonly:
        aws_call_log.begin_session(publish=any(item.path.is_relative_to(s) for item in items for s in recording))
    items.sort(key=lambda item: bool(getattr(getattr(item, "module", None), "RUNS_AFTER_RECORDING", False)))


def pytest_sessionfinish(session):
    from devstack import aws_call_log

    aws_call_log.end_session()

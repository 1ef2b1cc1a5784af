"""Shared fixtures: real redis-server, dynalite and celery processes on free ports.

Nothing here touches the machine's shared Redis on 6379. Each test gets its own
table name and key prefix, so tests sharing a session-wide server never see each
other's data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cachewarm import service, settings
from devstack.localstack import PROJECT_ROOT, Service, start_dynalite, start_redis

BIN = Path(sys.executable).parent
_next_db = 0


def _scrubbed_environ() -> dict[str, str]:
    """The process environment minus every variable our settings read."""
    names = set(settings.ENV_VARS.values()) | {"AWS_DEFAULT_REGION", "FLOWER_BASIC_AUTH"}
    return {k: v for k, v in os.environ.items() if k not in names}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[Service]:
    """A private redis-server for the whole session."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dynalite(tmp_path_factory) -> Iterator[Service]:
    """An in-memory dynalite for the whole session."""
    server = start_dynalite(tmp_path_factory.mktemp("dynalite"), persist=False)
    yield server
    server.stop()


@pytest.fixture
def stack_env(redis_server, dynalite, monkeypatch) -> dict[str, str]:
    """Environment pointing at the session's servers, with a fresh table name and key prefix.

    It is applied to ``os.environ`` too, and cached settings and clients are reset.
    """
    suffix = uuid.uuid4().hex[:10]
    # A database of its own per test keeps Celery queues of different tests apart.
    global _next_db
    _next_db = _next_db % 15 + 1
    redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{_next_db}"
    redis.Redis.from_url(redis_url).flushdb()  # our private server, never the shared one
    env = _scrubbed_environ()
    env.update(
        REDIS_URL=redis_url,
        AWS_ENDPOINT_URL_DYNAMODB=dynalite.url,
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        TABLE_NAME=f"Restaurants-{suffix}",
        CACHE_KEY_PREFIX=f"t{suffix}",
    )
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    service.reset()
    yield env
    service.reset()


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


def run_cli(*args: str, env: dict[str, str], timeout: float = 120, input: str | None = None):
    """Run the installed ``cachewarm`` console script as a user would."""
    return subprocess.run(
        [str(BIN / "cachewarm"), *args], env=env, capture_output=True, text=True, timeout=timeout,
        input=input, cwd=PROJECT_ROOT,
    )


@pytest.fixture
def cli():
    """``cli(*args, env=...)`` runs the console script and returns the CompletedProcess."""
    return run_cli


class CeleryProcess:
    """A real ``celery -A workers <command>`` process."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.argv = argv
        self.env = env
        self.log_path = log_path
        log = open(log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=PROJECT_ROOT, start_new_session=True,
        )
        log.close()
        self.service = Service(argv[3], "", self.process, log_path)

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Block until ``text`` appears in the log (or fail with the log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"{self.argv} exited {self.process.returncode}:\n{self.log()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen in {timeout}s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it hangs."""
        self.service.stop(timeout=20)

    def kill(self) -> None:
        """SIGKILL the whole process group, like an OOM killer or a lost node."""
        self.service.kill()


@pytest.fixture
def celery_proc(tmp_path) -> Iterator:
    """Factory: ``celery_proc(["worker", ...], env)`` starts a celery process; all stop at teardown."""
    started: list[CeleryProcess] = []

    def start(args: list[str], env: dict[str, str], *, name: str | None = None) -> CeleryProcess:
        argv = [str(BIN / "celery"), "-A", "workers", *args]
        log_path = tmp_path / f"{name or args[0]}-{len(started)}.log"
        proc = CeleryProcess(argv, env, log_path)
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

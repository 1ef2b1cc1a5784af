"""Real ``celery -A workers ...`` processes, and Celery clients for a test's broker."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from devstack import aws_calls
from devstack.localstack import PROJECT_ROOT, Service, StackError, wait_for_log
from tests.support.cli import BIN, recording_env

# --include: the ledger is test instrumentation from the dev stack, loaded only into these workers.
LEDGER_WORKER_ARGS = ["worker", "--loglevel=INFO", "--concurrency=2", "--without-mingle", "--without-gossip",
                      "--include=devstack.ledger"]


class CeleryProcess:
    """A real ``celery -A workers <command>`` process in its own process group.

    Its AWS calls are recorded (:mod:`devstack.aws_calls`: a worker loads the recorder with
    ``--include``, beat and Flower run under ``python -m devstack.aws_calls``); ``argv`` is the
    celery command as given.
    """

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.command = aws_calls.command(argv)
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
        try:
            self.process = subprocess.Popen(
                self.command, env=recording_env(env), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=PROJECT_ROOT, start_new_session=True,
            )
        finally:
            log.close()
        self.service = Service(argv[3], "", self.process, log_path)

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Block until ``text`` appears in the log; AssertionError with the log's tail otherwise."""
        try:
            wait_for_log(self.service, text, timeout)
        except StackError as exc:
            raise AssertionError(f"{self.argv}: {exc}\n{self.log()[-3000:]}") from None

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it hangs."""
        self.service.stop(timeout=20)

    def kill(self) -> None:
        """SIGKILL the whole process group, like an OOM killer or a lost node."""
        self.service.kill()


def celery_argv(*args: str) -> list[str]:
    """``celery -A workers *args`` from this venv."""
    return [str(BIN / "celery"), "-A", "workers", *args]


def start_worker(celery_proc, env: dict[str, str], *extra: str, name: str = "worker", ready: bool = True,
                 include: tuple[str, ...] = ()):
    """A real worker (prefork, 2 processes) with the task ledger loaded, started by ``celery_proc``.

    ``include``: more modules to load (test tasks); merged into the ledger's ``--include``,
    because Celery reads only the last one.
    """
    args = [f"{arg},{','.join(include)}" if include and arg.startswith("--include=") else arg
            for arg in LEDGER_WORKER_ARGS]
    proc = celery_proc([*args, f"--hostname={name}-{uuid.uuid4().hex[:6]}@%h", *extra], env, name=name)
    if ready:
        proc.wait_for("ready.", timeout=60)
    return proc


def celery_app_for(env: dict[str, str]):
    """A Celery app (a client) for ``env``'s broker; close it when done."""
    from cachewarm.settings import Settings
    from workers.app import create_app

    return create_app(Settings.from_env(env))


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` (a killed worker and its pool) still exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True

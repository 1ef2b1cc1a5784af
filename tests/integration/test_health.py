"""Issue 13, item 3: each container's health check (``python -m workers.health ROLE``) against real processes.

The worker, beat and Flower run as the fixtures start them, each with its own ``TMPDIR`` (where the
worker and beat keep their liveness files, as a container's ``/tmp``). A check passes while its
process does its work, and fails (exit 1, one line saying why) when the process is stopped, killed,
frozen (``SIGSTOP``: a stuck main loop) or, for the worker, cut off from its broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from devstack.localstack import free_port
from tests.support.cli import BIN
from tests.support.redis_proc import RedisProc
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def health(role: str, env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m workers.health ROLE ARGS`` as the containers run it (from a directory of its own)."""
    return subprocess.run([str(BIN / "python"), "-m", "workers.health", role, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def passes(role: str, env: dict[str, str], *args: str, cwd: Path):
    done = health(role, env, *args, cwd=cwd)
    return done if done.returncode == 0 else None


def fails(role: str, env: dict[str, str], *args: str, cwd: Path):
    done = health(role, env, *args, cwd=cwd)
    assert done.returncode in (0, 1), done.stderr
    return done if done.returncode == 1 else None


def own_tmpdir(env: dict[str, str], path: Path) -> dict[str, str]:
    """``env`` with a TMPDIR of its own (a container's /tmp)."""
    path.mkdir(parents=True, exist_ok=True)
    return dict(env, TMPDIR=str(path))


def test_worker_check_follows_the_workers_event_loop(celery_proc, stack_env, tmp_path):
    env = own_tmpdir(stack_env, tmp_path / "worker-tmp")
    assert "no liveness file" in health("worker", env, cwd=tmp_path).stderr  # nothing started yet
    worker = celery_proc(["worker", "--loglevel=INFO", "--concurrency=1", "--without-mingle", "--without-gossip"],
                         env)
    worker.wait_for("ready.")
    done = wait_until(lambda: passes("worker", env, cwd=tmp_path), 30, "a healthy worker")
    assert f"pid {worker.process.pid}" in done.stdout

    # A frozen main loop (SIGSTOP) stops the touches: stale after --max-age, healthy again once it runs.
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        done = wait_until(lambda: fails("worker", env, "--max-age", "3", cwd=tmp_path), 30, "a stale worker")
        assert "last showed life" in done.stderr
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    wait_until(lambda: passes("worker", env, "--max-age", "3", cwd=tmp_path), 30, "the worker's loop again")

    worker.stop()  # warm shutdown removes the file
    done = health("worker", env, cwd=tmp_path)
    assert done.returncode == 1 and "no liveness file" in done.stderr


def test_worker_check_fails_at_once_when_the_worker_is_killed(celery_proc, stack_env, tmp_path):
    env = own_tmpdir(stack_env, tmp_path / "worker-tmp")
    worker = celery_proc(["worker", "--loglevel=INFO", "--concurrency=1", "--without-mingle", "--without-gossip"],
                         env)
    worker.wait_for("ready.")
    wait_until(lambda: passes("worker", env, cwd=tmp_path), 30, "a healthy worker")
    worker.kill()  # SIGKILL: the file stays, fresh, but its writer is gone
    done = health("worker", env, cwd=tmp_path)
    assert done.returncode == 1 and f"process {worker.process.pid} that wrote" in done.stderr


def test_worker_check_fails_while_the_broker_is_away_and_recovers(celery_proc, stack_env, tmp_path):
    broker = RedisProc(tmp_path / "broker", []).start()
    try:
        env = own_tmpdir(dict(stack_env, REDIS_URL=broker.url), tmp_path / "worker-tmp")
        worker = celery_proc(["worker", "--loglevel=INFO", "--concurrency=1", "--without-mingle",
                              "--without-gossip"], env)
        worker.wait_for("ready.")
        wait_until(lambda: passes("worker", env, "--max-age", "3", cwd=tmp_path), 30, "a healthy worker")
        broker.kill()
        done = wait_until(lambda: fails("worker", env, "--max-age", "3", cwd=tmp_path), 30,
                          "the check to fail while the broker is away")
        assert "last showed life" in done.stderr
        broker.restart()
        wait_until(lambda: passes("worker", env, "--max-age", "3", cwd=tmp_path), 60, "the worker back on its broker")
        assert worker.process.poll() is None
    finally:
        broker.stop()


def test_beat_check_follows_its_ticks(celery_proc, stack_env, tmp_path):
    env = own_tmpdir(stack_env, tmp_path / "beat-tmp")
    beat = celery_proc(["beat", "--loglevel=INFO"], env, name="beat")
    beat.wait_for("beat: Starting...")
    done = wait_until(lambda: passes("beat", env, cwd=tmp_path), 30, "a healthy beat")
    assert f"pid {beat.process.pid}" in done.stdout

    os.kill(beat.process.pid, signal.SIGSTOP)
    try:
        # Beat ticks at least every beat_max_loop_interval (5 s): 8 s without a tick is stuck.
        wait_until(lambda: fails("beat", env, "--max-age", "8", cwd=tmp_path), 30, "a stale beat")
    finally:
        os.kill(beat.process.pid, signal.SIGCONT)
    wait_until(lambda: passes("beat", env, "--max-age", "8", cwd=tmp_path), 30, "beat ticking again")

    beat.stop()
    done = health("beat", env, cwd=tmp_path)
    assert done.returncode == 1 and "no liveness file" in done.stderr


def test_flower_check_asks_flowers_healthcheck(celery_proc, stack_env, tmp_path):
    env = dict(stack_env, FLOWER_BASIC_AUTH="ops:pw-for-the-health-test", FLOWER_PORT=str(free_port()))
    done = health("flower", env, cwd=tmp_path)
    assert done.returncode == 1 and "/healthcheck" in done.stderr  # nothing listens yet
    flower = celery_proc(["flower"], env, name="flower")
    flower.wait_for("Visit me at")
    done = wait_until(lambda: passes("flower", env, cwd=tmp_path), 30, "a healthy Flower")
    assert f"http://127.0.0.1:{env['FLOWER_PORT']}/healthcheck answered OK" in done.stdout

    flower.stop()
    done = health("flower", env, cwd=tmp_path)
    assert done.returncode == 1 and "refused" in done.stderr.lower()


def test_checks_of_nothing_fail_and_bad_usage_is_exit_2(stack_env, tmp_path):
    env = own_tmpdir(stack_env, tmp_path / "empty-tmp")
    for role in ("worker", "beat"):
        done = health(role, env, cwd=tmp_path)
        assert done.returncode == 1 and done.stderr.startswith(f"{role}: no liveness file")
    # A file that names no process.
    alive = tmp_path / "empty-tmp" / "cachewarm-alive"
    alive.mkdir()
    (alive / "worker").write_text("not a pid\n")
    assert health("worker", env, cwd=tmp_path).returncode == 1
    assert health("nothing", env, cwd=tmp_path).returncode == 2
    bad = dict(env, FLOWER_PORT="http")
    done = health("flower", bad, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: FLOWER_PORT=")

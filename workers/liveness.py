"""Liveness files: the worker's and beat's own sign of life, read by their health checks (``workers.health``).

Each long-running process touches one small file, ``$TMPDIR/cachewarm-alive/<role>``, from the loop that
does its work, and the health check reads its age and the pid in it (nothing goes over the network):

* **worker**: a consumer bootstep (:class:`WorkerLiveness`) touches ``worker`` every :data:`TOUCH_SECONDS`
  on the worker's event-loop timer, from the moment its consumer is connected and consuming. The timer
  runs only while that loop turns, and the step is stopped while the consumer reconnects, so the file
  goes stale when the worker's main loop is stuck *or* it has been cut off from the broker for longer
  than the check's limit (a restart is what helps a consumer wedged in a bad connection state).
* **beat**: every scheduler tick touches ``beat`` (wrapped at ``beat_init``). A beat that waits out a
  Redis outage still ticks (``workers/beat.py`` returns from a failed tick after at most redbeat's
  ``retry_period``), and so does a beat that lost the lock and stands by: both are alive. A second beat
  started while another holds the lock waits inside redbeat's start-up acquisition, before any tick,
  and goes stale: the deployment never runs two (ECS stops the old beat first, compose runs one).

The file holds the writer's pid; a process removes its own file when it exits normally, and the check
treats a dead pid as stopped, so a killed process is seen at once, not after the file ages.

Touching never raises: a directory it cannot write is logged once, and the health check then reports the
missing file. One process per role per ``TMPDIR`` (a container has its own ``/tmp``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from celery import bootsteps
from celery.signals import beat_init

log = logging.getLogger("cachewarm.worker")

#: Seconds between touches by a worker (beat touches after every tick, at least every beat_max_loop_interval).
TOUCH_SECONDS = 5.0
ROLES = ("worker", "beat")

_written: dict[str, int] = {}  # role -> the pid that wrote its file (a forked child is not that pid)
_warned: set[str] = set()


def alive_path(role: str) -> Path:
    """Where ``role``'s liveness file lives: ``$TMPDIR/cachewarm-alive/<role>`` (``/tmp`` by default)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return Path(tempfile.gettempdir()) / "cachewarm-alive" / role


def touch(role: str) -> None:
    """Mark ``role`` alive now, as this process. Never raises."""
    path = alive_path(role)
    pid = os.getpid()
    try:
        if _written.get(role) == pid:
            try:
                os.utime(path)
                return
            except FileNotFoundError:
                pass  # removed behind our back: write it again
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{role}.{pid}")
        partial.write_text(f"{pid}\n")
        os.replace(partial, path)
    except OSError as exc:
        if role not in _warned:
            _warned.add(role)
            log.warning("cannot write the %s liveness file %s (%s): its health check will fail", role, path, exc)
        return
    if role not in _written:
        atexit.register(remove, role)
    _written[role] = pid


def remove(role: str) -> None:
    """Remove ``role``'s liveness file if this process wrote it (on a normal exit)."""
    path = alive_path(role)
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


@dataclass(frozen=True)
class Sign:
    """What a liveness file says: who wrote it and how long ago."""

    pid: int
    age: float


def read(role: str) -> Sign | None:
    """``role``'s last sign of life, or None when there is no readable file."""
    path = alive_path(role)
    try:
        mtime = path.stat().st_mtime
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return Sign(pid=pid, age=max(0.0, time.time() - mtime))


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (not gone, not a zombie) in this pid namespace."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: the signal said it exists
    return state not in ("Z", "X")


class WorkerLiveness(bootsteps.StartStopStep):
    """Consumer bootstep: touch the worker's liveness file from the event loop while consuming."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs):
        self.tref = None
        super().__init__(parent, **kwargs)

    def start(self, parent) -> None:
        touch("worker")
        self.tref = parent.timer.call_repeatedly(TOUCH_SECONDS, touch, ("worker",), priority=10)

    def stop(self, parent) -> None:
        if self.tref is not None:
            parent.timer.cancel(self.tref)
            self.tref = None

    def shutdown(self, parent) -> None:
        self.stop(parent)
        remove("worker")


@beat_init.connect
def watch_beat(sender=None, **_: object) -> None:
    """Touch beat's liveness file at start and after every tick of its scheduler (``sender`` is beat's Service)."""
    scheduler = getattr(sender, "scheduler", None)
    if scheduler is None:
        return
    tick = scheduler.tick

    @functools.wraps(tick)
    def tick_and_touch(*args, **kwargs):
        interval = tick(*args, **kwargs)
        touch("beat")
        return interval

    scheduler.tick = tick_and_touch
    touch("beat")


def install(app) -> None:
    """Add the worker's liveness step to ``app`` (beat's hook is connected at import)."""
    app.steps["consumer"].add(WorkerLiveness)

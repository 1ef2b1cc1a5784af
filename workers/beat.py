"""celery-redbeat's scheduler, made to outlive a Redis outage.

redbeat (checked against celery-redbeat 2.4.2, and its main branch of
2026-08-14, with redis-py 8.1) ends the beat process on three faults that a
Redis restart produces:

* sibson/redbeat#285 "Beat crash after Redis SERVER_CLOSED_CONNECTION_ERROR":
  the start-up lock acquisition runs in a ``beat_init`` signal handler whose
  error Celery logs and swallows, so ``scheduler.lock`` stays None and the
  first ``tick()`` fails with ``AttributeError: 'NoneType' object has no
  attribute 'extend'``. (sibson/redbeat#208, closed by PR #240, made ``tick()``
  insist on the lock whenever ``lock_key`` is set, so a beat without it no
  longer dispatches: this is the crash that replaced the duplicate.)
* a connection error while ``tick()`` renews the lock: the lock is a plain
  redis-py ``Lock`` on the raw client, outside redbeat's retrying connection
  (sibson/redbeat PR #314 "make Lock operations retriable", open, would route
  it through the retries), so the error ends beat with a traceback;
* sibson/redbeat#230 "Cannot extend a lock that's no longer owned": a lock that
  expired while Redis was away, or that Redis came back without, makes the
  renewal raise ``LockNotOwnedError``, which also ends beat.

Here a connection error pauses beat for :data:`RETRY_SECONDS` and tries again
(logged once per outage), and a missing or lost lock is taken back only if no
other beat took it meanwhile: otherwise this beat stands by, dispatching
nothing, like a second beat at start-up. Either way each period is still
dispatched at most once. A redbeat without the methods and names this class
relies on makes the scheduler refuse to start (RuntimeError naming the issue).
"""

from __future__ import annotations

import inspect
import logging

import redbeat.schedulers as _redbeat
from celery.beat import Scheduler
from redbeat import RedBeatScheduler as _RedBeatScheduler

log = logging.getLogger(__name__)

#: Seconds between attempts while Redis does not answer.
RETRY_SECONDS = 1.0
#: The celery-redbeat release this subclass was written and tested against.
CHECKED_REDBEAT = "2.4.2"


def check_redbeat(module=_redbeat) -> None:
    """Raise RuntimeError unless redbeat still has what :class:`RedBeatScheduler` overrides and uses."""
    cls = getattr(module, "RedBeatScheduler", None)
    tick = getattr(cls, "tick", None)
    problems = []
    if tick is None or tuple(inspect.signature(tick).parameters)[:2] != ("self", "min"):
        problems.append("RedBeatScheduler.tick(self, min=min, **kwargs)")
    if getattr(cls, "close", None) is None:
        problems.append("RedBeatScheduler.close")
    for name in ("get_redis", "LUA_EXTEND_TO_SCRIPT"):
        if not hasattr(module, name):
            problems.append(name)
    if problems:
        raise RuntimeError(f"workers/beat.py: redbeat.schedulers no longer has {', '.join(problems)} (overridden "
                           f"for sibson/redbeat#208, #230, #285 and PR #314, checked against celery-redbeat "
                           f"{CHECKED_REDBEAT}); check whether upstream fixed them and adapt workers/beat.py")


class RedBeatScheduler(_RedBeatScheduler):
    """redbeat with reconnection and a lock that can be lost and taken back: see the module docstring."""

    _outage = False
    _standing_by = False

    def __init__(self, *args, **kwargs):
        check_redbeat()
        super().__init__(*args, **kwargs)

    def tick(self, min=min, **kwargs):
        """One beat iteration; returns seconds until the next one."""
        from redis.exceptions import ConnectionError, LockNotOwnedError, TimeoutError

        try:
            if self.lock_key and not self._holds_lock():
                return self.max_interval  # another beat has the schedule: stand by
            interval = super().tick(min=min, **kwargs)
        except (ConnectionError, TimeoutError) as exc:
            if not self._outage:
                log.warning("beat: Redis unavailable (%s); retrying every %.0fs", exc, RETRY_SECONDS)
            self._outage = True
            return RETRY_SECONDS
        except LockNotOwnedError:  # redbeat#230: lost between our check and redbeat's renewal
            log.warning("beat: lost the lock; standing by")
            return self.max_interval
        if self._outage:
            log.info("beat: Redis is back; scheduling resumed")
            self._outage = False
        return interval

    def _holds_lock(self) -> bool:
        """True if this beat holds the lock, taking it when it is free (never acquired, expired, or lost)."""
        if self.lock is None:  # redbeat#285: the start-up acquisition failed
            client = _redbeat.get_redis(self.app)
            self.lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
            # As redbeat does: extend *to* the timeout, not by it.
            self.lock.lua_extend = client.register_script(_redbeat.LUA_EXTEND_TO_SCRIPT)
        if self.lock.owned():
            return True
        if self.lock.acquire(blocking=False):
            log.info("beat: Acquired lock")
            self._standing_by = False
            return True
        if not self._standing_by:
            log.info("beat: another beat holds the lock; standing by")
            self._standing_by = True
        return False

    def close(self):
        """Release the lock if Redis answers; close the scheduler either way."""
        from redis.exceptions import ConnectionError, LockError, TimeoutError

        try:
            super().close()
        except (ConnectionError, TimeoutError, LockError) as exc:
            log.warning("beat: could not release the lock (%s); it expires after %ss", exc, self.lock_timeout)
            self.lock = None
            Scheduler.close(self)

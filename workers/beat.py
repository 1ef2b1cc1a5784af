"""celery-redbeat's scheduler, made to outlive a Redis outage.

redbeat renews its lock at the start of every tick through a plain redis-py
``Lock``, outside its own retrying connection, so a Redis restart (or any
connection error at that moment) ends the beat process with a traceback; and a
beat whose lock was lost (it expired while Redis was away, or Redis came back
without it) also ends. Here a connection error pauses beat for a second and
tries again, and a lost lock is taken back only if no other beat took it
meanwhile: otherwise this beat stands by, dispatching nothing, like a second
beat at start-up. Either way each period is still dispatched at most once.
"""

from __future__ import annotations

import logging

from redbeat import RedBeatScheduler as _RedBeatScheduler

log = logging.getLogger(__name__)

#: Seconds between attempts while Redis does not answer.
RETRY_SECONDS = 1.0


class RedBeatScheduler(_RedBeatScheduler):
    """redbeat with reconnection: see the module docstring."""

    _outage = False

    def tick(self, min=min, **kwargs):
        """One beat iteration; returns seconds until the next one."""
        from redis.exceptions import ConnectionError, LockNotOwnedError, TimeoutError

        try:
            if self.lock_key and self.lock is not None and not self._holds_lock():
                return self.max_interval  # another beat has the schedule: stand by
            interval = super().tick(min=min, **kwargs)
        except (ConnectionError, TimeoutError) as exc:
            if not self._outage:
                log.warning("beat: Redis unavailable (%s); retrying every %.0fs", exc, RETRY_SECONDS)
            self._outage = True
            return RETRY_SECONDS
        except LockNotOwnedError:
            log.warning("beat: lost the lock while Redis was away; standing by")
            return self.max_interval
        if self._outage:
            log.info("beat: Redis is back; scheduling resumed")
            self._outage = False
        return interval

    def _holds_lock(self) -> bool:
        """True if this beat holds the lock, taking it back when it is free (it expired or Redis lost it)."""
        if self.lock.owned():
            return True
        if self.lock.acquire(blocking=False):
            log.info("beat: Re-acquired lock")
            return True
        return False

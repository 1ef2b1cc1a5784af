"""Fill leases that live exactly as long as their DynamoDB reads.

A fixed lease lifetime has to guess how long a fill takes. Guess short, and a
slow DynamoDB (throttling with SDK retries stretches one logical read to
seconds) outlives the lease: a second reader takes over and reads too, then a
third, and the cache multiplies the load on the store that is already slow. Guess
long, and a crashed holder blocks everyone for that long. So the lease is short
and renewed: :class:`LeaseKeeper` runs one daemon thread per process that extends
every lease this process holds, each third of its lifetime, for as long as the
read behind it is in flight (Facebook's memcache leases, NSDI 2013, with the
holder's liveness made explicit). A holder that dies stops renewing and its lease
lapses within one lifetime; exactly one waiter then takes it over (ACQUIRE is
atomic).

A waiter waits as long as a live lease exists, bounded by :func:`read_budget_seconds`:
the longest one DynamoDB request can take under the client's own timeouts and
retries. The keeper stops renewing a lease past that budget too, so a holder
stuck for longer than any read can take frees its waiters.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachewarm.scripts import RELEASE, RENEW, RENEW_SLOT
from cachewarm.settings import Settings

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

#: botocore's standard retry mode waits ``rand() * min(base * 2**i, 20)`` seconds
#: before retry ``i + 1`` (botocore/retries/standard.py ``ExponentialBackoff``),
#: with base 1 s for throttling errors, the worst case.
_BOTOCORE_MAX_BACKOFF = 20.0
_BOTOCORE_THROTTLING_BASE = 1.0


def read_budget_seconds(settings: Settings) -> float:
    """The longest one DynamoDB request can take: every attempt's connect and read timeouts plus the backoffs.

    With the defaults (6 attempts, 5 s timeouts): 6 x (5 + 5) + (1 + 2 + 4 + 8 + 16) = 91 s.
    """
    attempts = settings.dynamodb_max_attempts
    backoffs = sum(min(_BOTOCORE_THROTTLING_BASE * 2**i, _BOTOCORE_MAX_BACKOFF) for i in range(attempts - 1))
    return attempts * 2 * settings.dynamodb_timeout + backoffs


@dataclass(slots=True)
class _Held:
    lease_key: str
    until: float  # monotonic: renew no longer than the read budget
    slots_key: str | None = None  # set once the fill holds one of the CACHE_MAX_FILLS slots


class LeaseKeeper:
    """Renews the fill leases (and fill slots) this process holds while their reads run.

    The thread starts when a lease is first held, never at import, and ends when
    none is; it starts again in a forked child (Celery's prefork pool), whose
    parent's thread did not survive the fork. A lease and its slot are separate
    calls: the slots' key lives in another slot of a Redis Cluster.
    """

    def __init__(self, redis_client: redis.Redis, *, lease_ms: int, budget_seconds: float):
        self.redis = redis_client
        self.lease_ms = lease_ms
        self.budget_seconds = budget_seconds
        self.interval = max(0.005, lease_ms / 3000.0)  # three renewals per lifetime: one lost is harmless
        self._renew = redis_client.register_script(RENEW)
        self._renew_slot = redis_client.register_script(RENEW_SLOT)
        self._release = redis_client.register_script(RELEASE)
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._pid = 0
        self.renewals = 0  # successful renewals, for tests and figures

    def hold(self, token: str, lease_key: str) -> None:
        """Keep ``token``'s lease alive until :meth:`done` or :meth:`release`."""
        with self._lock:
            self._held[token] = _Held(lease_key, time.monotonic() + self.budget_seconds)
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="cachewarm-lease-keeper", daemon=True).start()

    def hold_slot(self, token: str, slots_key: str) -> None:
        """Keep the fill slot ``token`` took alive too (freed by :meth:`done` or :meth:`release`)."""
        with self._lock:
            held = self._held.get(token)
            if held is not None:
                held.slots_key = slots_key

    def done(self, token: str) -> None:
        """The read ended: stop renewing, free the fill slot (the FILL script settles the lease)."""
        with self._lock:
            held = self._held.pop(token, None)
        if held is not None and held.slots_key:
            self._quietly(self.redis.zrem, held.slots_key, token)

    def release(self, token: str) -> None:
        """Stop renewing and free the lease and slot now: the read failed, a waiter should take over."""
        with self._lock:
            held = self._held.pop(token, None)
        if held is None:
            return
        self._quietly(self._release, keys=[held.lease_key], args=[token])
        if held.slots_key:
            self._quietly(self.redis.zrem, held.slots_key, token)

    def _run(self) -> None:
        pid = os.getpid()
        while True:
            time.sleep(self.interval)
            if os.getpid() != pid:  # pragma: no cover - a forked copy of this thread cannot exist
                return
            now = time.monotonic()
            with self._lock:
                if not self._held:  # idle: end the thread; the next hold() starts another
                    self._pid = 0
                    return
                due = [(token, held.lease_key, held.slots_key) for token, held in self._held.items()
                       if held.until > now]
            for token, lease_key, slots_key in due:
                # Redis down: the lease lapses, which is what a dead cache means anyway.
                if self._quietly(self._renew, keys=[lease_key], args=[token, self.lease_ms]):
                    self.renewals += 1
                if slots_key:
                    self._quietly(self._renew_slot, keys=[slots_key], args=[token, self.lease_ms])

    @staticmethod
    def _quietly(call: Callable[..., object], *args: Any, **kwargs: Any) -> bool:
        """Run one best-effort command: a lease or slot we cannot reach lapses by itself within its lifetime."""
        try:
            call(*args, **kwargs)
            return True
        except Exception as exc:
            log.debug("lease bookkeeping failed: %s", exc)
            return False

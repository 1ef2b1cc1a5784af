"""A worker must survive a Redis restart that happens while it runs tasks.

Found by tests/reliability/test_redis_restart.py: when Redis goes away while a
task is running (acks_late), the consumer closes its connection, and kombu's
Redis channel is detached from it (``channel.connection`` is None). Whatever
then still needs that channel (the requeue of unacknowledged messages while the
channel closes, the ack of a task that finishes a moment later) builds a Redis
client from the detached transport and fails with ``AttributeError:
'NoneType' object has no attribute 'hostname'`` (or ``'client'``). Celery does
not expect an AttributeError there and ends the whole worker ("Unrecoverable
error") instead of reconnecting.

Upstream, the same failure in other places:

* celery/kombu#582 "Error on restarting Gossip": ``Channel._connparams`` on a
  closed connection, ``'NoneType' object has no attribute 'hostname'``;
* celery/kombu#659 "'NoneType' object has no attribute 'can_read'": the Redis
  channel used after its connection went away;
* celery/kombu#970 "Error on Restarting Celery": ``QoS.restore_unacked`` failing
  while the channel closes, so unacked messages were not restored.

All three are closed, yet kombu 5.7.0 (checked here, with redis-py 8.1 and
Celery 5.7.0) still raises the AttributeError from ``Channel._connparams`` and
lets a connection error out of ``QoS.restore_unacked``. Two narrow patches:

* ``Channel._connparams`` on a channel whose connection is gone raises redis'
  ``ConnectionError`` (an error kombu and Celery already handle: "Couldn't
  ack", reconnect) instead of an AttributeError;
* ``QoS.restore_unacked`` that cannot reach Redis logs and skips the requeue, so
  the channel still closes cleanly. Nothing is lost: the message is still in
  Redis's ``unacked`` hash, and kombu's visibility sweep hands it out again
  once it is older than the visibility timeout (BROKER_VISIBILITY_TIMEOUT_SECONDS).

Applied once per worker, when it starts (Celery's ``worker_init`` signal, in
the main process before the consumer connects and the pool forks). Importing
this module patches nothing. If the patched methods are gone or their
signatures changed, the worker refuses to start with a RuntimeError naming
the upstream issue: re-check the issues above before adapting the patch.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

from celery.signals import worker_init

log = logging.getLogger("cachewarm.worker")

#: The kombu release these patches were written and tested against.
CHECKED_KOMBU = "5.7.0"

#: What each patch replaces: (class name in kombu.transport.redis, method, its parameters, upstream issues).
PATCHED = (
    ("Channel", "_connparams", ("self", "asynchronous"), "celery/kombu#582, #659"),
    ("QoS", "restore_unacked", ("self", "client"), "celery/kombu#970"),
)


def check_surface(module: Any = None) -> None:
    """Raise RuntimeError unless every patched method exists with the parameters the patch expects."""
    if module is None:
        from kombu.transport import redis as module
    for cls_name, name, params, issues in PATCHED:
        owner = getattr(module, cls_name, None)
        method = getattr(owner, name, None) if owner is not None else None
        if method is None:
            raise RuntimeError(f"workers/kombu_fixes.py: kombu.transport.redis.{cls_name}.{name} is gone "
                               f"(patched for {issues}, checked against kombu {CHECKED_KOMBU}); "
                               "check whether upstream fixed the issue and drop or adapt the patch")
        found = tuple(inspect.signature(inspect.unwrap(method)).parameters)
        if found != params:
            raise RuntimeError(f"workers/kombu_fixes.py: kombu.transport.redis.{cls_name}.{name}{found} no "
                               f"longer has the parameters {params} (patched for {issues}, checked against "
                               f"kombu {CHECKED_KOMBU}); check whether upstream fixed the issue")


def _patch_detached_channel(kombu_redis: Any) -> None:
    from redis.exceptions import ConnectionError

    original = kombu_redis.Channel._connparams
    if getattr(original, "_cachewarm_patched", False):
        return

    @functools.wraps(original)
    def _connparams(self, asynchronous=False):
        # kombu#582/#659: a detached channel would fail with AttributeError, which ends the worker.
        transport = self.connection
        if transport is None or transport.client is None:
            raise ConnectionError("the broker connection is closed")
        return original(self, asynchronous=asynchronous)

    _connparams._cachewarm_patched = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = _connparams


def _patch_restore_unacked(kombu_redis: Any) -> None:
    original = kombu_redis.QoS.restore_unacked
    if getattr(original, "_cachewarm_patched", False):
        return

    @functools.wraps(original)
    def restore_unacked(self, client=None):
        # kombu#970: a requeue that cannot reach Redis must not keep the channel from closing.
        try:
            return original(self, client)
        except self.channel.connection_errors as exc:
            pending = len(self._delivered)
            self._delivered.clear()
            log.warning("could not requeue %d unacknowledged message(s) now (%s); Redis hands them out again "
                        "once they are older than the visibility timeout", pending, exc)
            return None

    restore_unacked._cachewarm_patched = True  # type: ignore[attr-defined]
    kombu_redis.QoS.restore_unacked = restore_unacked


def apply() -> None:
    """Check kombu's surface, then patch it (idempotent)."""
    import kombu
    from kombu.transport import redis as kombu_redis

    check_surface(kombu_redis)
    if kombu.__version__ != CHECKED_KOMBU:
        log.info("kombu %s (the Redis transport patches were checked against %s): see workers/kombu_fixes.py",
                 kombu.__version__, CHECKED_KOMBU)
    _patch_detached_channel(kombu_redis)
    _patch_restore_unacked(kombu_redis)


@worker_init.connect
def apply_at_worker_start(sender: object = None, **_: object) -> None:
    """Patch kombu's Redis transport as the worker starts (see the module docstring).

    A changed kombu ends the worker: Celery's signal dispatch logs and swallows an
    exception from a receiver, so a RuntimeError leaves as SystemExit (exit code 1).
    """
    try:
        apply()
    except RuntimeError as exc:
        raise SystemExit(f"error: {exc}") from None

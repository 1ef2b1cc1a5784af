"""A worker must survive a Redis restart that happens while it runs tasks.

Found by tests/reliability/test_redis_restart.py: when Redis goes away while a
task is running (acks_late), the consumer closes its connection, and kombu's
Redis channel is detached from it. Whatever then still needs that channel (the
requeue of unacknowledged messages while the channel closes, the ack of a task
that finishes a moment later) builds a Redis client from the detached
transport and fails with ``AttributeError: 'NoneType' object has no attribute
'hostname'`` (or ``'client'``). Celery does not expect an AttributeError there
and ends the whole worker ("Unrecoverable error") instead of reconnecting.

Two patches to kombu's Redis transport, both narrow:

* a channel whose connection is gone raises redis' ConnectionError (a
  connection error kombu and Celery already handle: "Couldn't ack", reconnect)
  instead of an AttributeError;
* a requeue that cannot reach Redis is logged and skipped, so the channel
  still closes cleanly. Nothing is lost: the message is still in Redis's
  ``unacked`` hash, and kombu's visibility sweep hands it out again once it is
  older than the visibility timeout (BROKER_VISIBILITY_TIMEOUT_SECONDS).

Applied once, at import (it patches classes; it connects to nothing).
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger("cachewarm.worker")


def _patch_detached_channel() -> None:
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError

    original = kombu_redis.Channel._connparams
    if getattr(original, "_cachewarm_patched", False):
        return

    @functools.wraps(original)
    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport is None or transport.client is None:
            raise ConnectionError("the broker connection is closed")
        return original(self, asynchronous=asynchronous)

    _connparams._cachewarm_patched = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = _connparams


def _patch_restore_unacked() -> None:
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.QoS.restore_unacked
    if getattr(original, "_cachewarm_patched", False):
        return

    @functools.wraps(original)
    def restore_unacked(self, client=None):
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


_patch_detached_channel()
_patch_restore_unacked()

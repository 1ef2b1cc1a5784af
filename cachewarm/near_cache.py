"""The near cache (L1): summaries kept in the process, invalidated by the server's pushes.

A Redis round trip costs 100-150 µs on loopback; a dict lookup 0.5 µs. With
``CACHE_LOCAL_MAX_ITEMS`` > 0 the engine keeps up to that many decoded entries in
the process (least recently used evicted first) and serves repeated reads from
them. What keeps them true:

* **Server-assisted invalidation** (Redis and Valkey ``CLIENT TRACKING`` in
  ``BCAST`` mode on the cache's key prefix, on one dedicated RESP3 connection
  per process): the server pushes the key of every write, delete, expiry and
  eviction under the prefix, whoever made it: a ``review add`` in another
  process, the change feed's invalidations, a warm's overwrites. Broadcasting
  mode needs no per-key bookkeeping on the server.
* **Never older than a write it could have missed.** Until the tracking
  connection is up and subscribed, and from the moment it fails, the L1 is empty
  and unused; a fresh subscription clears it again. A read that raced with an
  invalidation (the push arrived while its GET was in flight) is not stored: each
  store carries the invalidation sequence number seen before its GET. A
  connection that goes quiet is pinged every second, so a silent network failure
  turns the L1 off within about two seconds.
* **Never outlives its Redis TTL**: an entry expires locally at the expiry its
  value carries (the server's push for the expiry usually comes first).
* Where the server refuses ``CLIENT TRACKING`` (an ACL without it, a proxy), and
  on a Redis Cluster (tracking is per node), the L1 falls back to entries that
  live at most :data:`FALLBACK_TTL_SECONDS`, and says so once at start.

L1 hits and invalidations received are tallied with the engine's counters
(``l1_hits``, ``l1_invalidations``).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cachewarm.entries import CacheEntry

if TYPE_CHECKING:
    import redis

    from cachewarm.metrics import Metrics

log = logging.getLogger(__name__)

#: Without push invalidation, an L1 entry lives at most this long (a read may be this stale).
FALLBACK_TTL_SECONDS = 1.0
#: Keys whose latest invalidation is remembered, to refuse a racing store; older ones raise a floor instead.
REMEMBERED_INVALIDATIONS = 10_000
#: A quiet tracking connection is pinged this often (seconds): a dead peer is noticed within about twice this.
PING_SECONDS = 1.0
TRACKING, FALLBACK = "tracking", "fallback"


class NearCache:
    """A bounded LRU of decoded entries, kept true by the server's invalidation pushes."""

    def __init__(self, client: redis.Redis, prefix: str, max_items: int, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time, cluster: bool = False):
        self.client = client
        self.prefix = prefix
        self.max_items = max_items
        self.metrics = metrics
        self.clock = clock
        self.mode = FALLBACK if cluster else TRACKING
        self._entries: OrderedDict[str, tuple[CacheEntry, float]] = OrderedDict()
        self._invalidated: OrderedDict[str, int] = OrderedDict()
        self._hits = 0
        self._seq = 0  # bumped by every invalidation received
        self._floor = 0  # stores with a ticket below this are refused (a reset, or a forgotten invalidation)
        self._live = False  # the tracking connection is subscribed (always True in fallback mode)
        self._lock = threading.Lock()
        self._pid = 0
        self.connection: Any = None  # the tracking connection, while there is one (tests kill it)
        if self.mode == FALLBACK:
            log.warning("near cache: Redis Cluster, no push invalidation; entries live at most %.1fs",
                        FALLBACK_TTL_SECONDS)
            self._live = True

    # -- the read path ------------------------------------------------------------------
    def ticket(self) -> int:
        """Taken before a GET; :meth:`put` refuses the value if an invalidation came since."""
        self._start()
        return self._seq

    def get(self, key: str) -> CacheEntry | None:
        """The live entry for ``key``, or None."""
        if not self._live:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            entry, until = found
            if time.monotonic() >= until:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            self._hits += 1  # under the lock already held: the hit path takes no other (see take_hits)
        return entry

    def take_hits(self) -> int:
        """L1 hits since the last call (the engine adds them to its counters when it flushes)."""
        with self._lock:
            hits, self._hits = self._hits, 0
        return hits

    def put(self, key: str, entry: CacheEntry, ticket: int) -> None:
        """Keep ``entry`` (read from Redis after :meth:`ticket` returned ``ticket``) unless invalidated since."""
        lifetime = entry.expires_at - self.clock()
        if self.mode == FALLBACK:
            lifetime = min(lifetime, FALLBACK_TTL_SECONDS)
        if lifetime <= 0:
            return
        with self._lock:
            if not self._live or ticket < self._floor or ticket < self._invalidated.get(key, 0):
                return
            self._entries[key] = (entry, time.monotonic() + lifetime)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_items:
                self._entries.popitem(last=False)

    def invalidate(self, keys: list[str] | None) -> None:
        """Drop ``keys`` (None: everything) and refuse stores that read before now."""
        with self._lock:
            self._seq += 1
            if keys is None:
                self._entries.clear()
                self._floor = self._seq
            else:
                for key in keys:
                    self._entries.pop(key, None)
                    self._invalidated[key] = self._seq
                    self._invalidated.move_to_end(key)
                while len(self._invalidated) > REMEMBERED_INVALIDATIONS:
                    _, forgotten = self._invalidated.popitem(last=False)
                    self._floor = max(self._floor, forgotten)
        self.metrics.tally("l1_invalidations", 1 if keys is None else len(keys))

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def live(self) -> bool:
        """Whether the L1 serves reads now."""
        return self._live

    # -- the tracking connection ----------------------------------------------------------
    def _start(self) -> None:
        if self.mode == FALLBACK or self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a forked child starts its own (the parent's thread is not there)
            self._live = False
            self._entries.clear()
        threading.Thread(target=_follow, args=(weakref.ref(self),), name="cachewarm-near-cache", daemon=True).start()

    def _set_live(self, live: bool) -> None:
        with self._lock:
            self._live = live
            self._entries.clear()
            self._seq += 1
            self._floor = self._seq  # whatever was read before this moment may be stale

    def _connect(self) -> Any:
        """A new RESP3 connection with tracking on; the L1 is live from here."""
        pool = self.client.connection_pool
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 3})
        connection.connect()
        self.connection = connection
        # Through a weak reference: the connection (and its thread) must not keep a dropped engine alive.
        connection._parser.set_invalidation_push_handler(functools.partial(_apply_push, weakref.ref(self)))
        connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix)
        connection.read_response()
        self._set_live(True)
        log.info("near cache on: up to %d entries, invalidated by server pushes", self.max_items)
        return connection

    def _fall_back(self, exc: BaseException) -> None:
        self._close()
        self.mode = FALLBACK
        self._set_live(True)
        log.warning("near cache: the server refuses CLIENT TRACKING (%s); entries live at most %.1fs",
                    exc, FALLBACK_TTL_SECONDS)

    def _lost(self, exc: BaseException) -> None:
        log.debug("near cache: tracking connection failed: %s", exc)
        self._set_live(False)
        self._close()

    def _on_push(self, message: list[Any]) -> None:
        if not message or message[0] not in (b"invalidate", "invalidate"):
            return
        keys = message[1] if len(message) > 1 else None
        log.debug("near cache: invalidate %s", "everything" if keys is None else len(keys))
        self.invalidate(None if keys is None else [k.decode() if isinstance(k, bytes) else k for k in keys])

    def _close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.disconnect()
            except Exception as exc:  # already gone
                log.debug("near cache: closing the tracking connection: %s", exc)


def _follow(ref: weakref.ref[NearCache]) -> None:
    """The tracking thread: subscribe, apply pushes, reconnect with backoff; off while not subscribed.

    It holds its near cache only weakly, so it ends once the engine that owned it is gone (a test's, a
    reset service's) instead of pinging or reconnecting forever.
    """
    from redis.exceptions import ResponseError

    delay = 0.05
    while (near := ref()) is not None:
        try:
            connection = near._connect()
        except ResponseError as exc:  # NOPERM, unknown command: the server will not push
            near._fall_back(exc)
            return
        except Exception as exc:
            near._lost(exc)
            del near
            time.sleep(delay)
            delay = min(2.0, delay * 2)
            continue
        del near
        delay = 0.05
        try:
            _listen(connection, ref)
            return  # the near cache is gone
        except Exception as exc:
            if (near := ref()) is None:
                return
            near._lost(exc)
            del near


def _listen(connection: Any, ref: weakref.ref[NearCache]) -> None:
    """Read pushes (applied by the connection's handler) until the connection fails or the near cache is gone."""
    from redis.exceptions import ConnectionError, TimeoutError

    while True:
        try:
            # disconnect_on_error=False: redis-py would otherwise drop the socket on a quiet second, and
            # the PING below would silently open a new connection without tracking (found by the tests).
            connection.read_response(push_request=True, timeout=PING_SECONDS, disconnect_on_error=False)
        except TimeoutError:
            if ref() is None:
                connection.disconnect()
                return
            if connection._sock is None:  # never let send_command reconnect behind our back
                raise ConnectionError("near cache: the tracking connection is closed") from None
            connection.send_command("PING")  # quiet: make sure the server is still there
            connection.read_response(timeout=PING_SECONDS)


def _apply_push(ref: weakref.ref[NearCache], message: list[Any]) -> None:
    near = ref()
    if near is not None:
        near._on_push(message)

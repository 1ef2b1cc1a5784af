"""The cache-aside engine: read a summary through Redis, fill from DynamoDB.

Reads never fail because of the cache. If the cache's Redis is down, slow or
refuses us, the read goes to DynamoDB within a bounded time (socket timeouts),
says ``cache="unavailable"``, and the engine skips the cache (on a Redis Cluster:
that shard only, :mod:`cachewarm.shards`) for a short backoff instead of paying
the timeout again on every read.

Correctness under concurrency (see :mod:`cachewarm.scripts`):

* single-flight: a miss takes a lease; concurrent missers (threads or
  processes) poll for the holder's value instead of reading DynamoDB, for as
  long as the lease lives; the holder renews it while its read is in flight
  (:mod:`cachewarm.leases`), so one read per cold key at any DynamoDB latency;
* a cap on fills in flight across all processes (``CACHE_MAX_FILLS``): when the
  whole cache is cold, missers beyond it wait for a slot or for the value, so
  the cache never multiplies the load on DynamoDB;
* no stale sets: only the lease holder may fill, and a write voids the lease;
* hold-off: after a change-feed invalidation, reads are served from DynamoDB
  but not stored for ``change_hold_off_ms``, longer than the index's lag;
* refresh-ahead: XFetch (Vattani et al., VLDB 2015) lets one reader recompute a
  hot value shortly before it expires, so hot keys never go cold.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from cachewarm.backoff import Backoff
from cachewarm.entries import (  # re-exported: callers import the read path's names from here
    HIT,
    MISS,
    NO_VALUE,
    REFRESHED,
    UNAVAILABLE,
    WAITED,
    CacheEntry,
    FetchResult,
    xfetch_due,
)
from cachewarm.errors import TransportError
from cachewarm.hotkeys import HotKeys
from cachewarm.keys import KeySchema
from cachewarm.leases import LeaseKeeper, read_budget_seconds
from cachewarm.metrics import Metrics
from cachewarm.model import Summary
from cachewarm.near_cache import NearCache
from cachewarm.scripts import ACQUIRE, FILL, INVALIDATE, TAKE_SLOT, WARM
from cachewarm.settings import Settings
from cachewarm.shards import Breaker, eval_pipelined

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline

log = logging.getLogger(__name__)


class SummarySource(Protocol):
    """Where a miss reads from: :class:`~cachewarm.repository.RestaurantRepository`, or a test's stand-in."""

    def get_summary(self, name: str) -> Summary | None:
        """The restaurant's summary, or None when it does not exist."""

#: A lease waiter's polls: waits of at most 2, 4, 8, 16, then 25 ms, for as long as a live lease exists
#: (the read budget, not ``retries``, bounds the wait). A fill usually takes one DynamoDB query, a few ms.
LEASE_POLL = Backoff(retries=0, base=0.001, cap=0.025)

#: The FILL script's outcomes, by the counter each is tallied as.
FILL_OUTCOMES = {1: "fills", 0: "refused_lease", -1: "refused_floor", -2: "refused_hold"}

__all__ = ["HIT", "LEASE_POLL", "MISS", "NO_VALUE", "REFRESHED", "UNAVAILABLE", "WAITED", "CacheAside", "CacheEntry",
           "FetchResult", "SummarySource", "xfetch_due"]


class CacheAside:
    """Cache-aside reads of restaurant summaries, with leases, hot-key tracking and fail-open."""

    def __init__(
        self,
        redis_client: redis.Redis,
        repository: SummarySource,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        xfetch_beta: float = 1.0,
        hot_flush_seconds: float = 0.5,
    ):
        self.redis = redis_client
        self.repo = repository
        self.settings = settings
        self.keys = KeySchema(prefix=settings.key_prefix)
        self.hot = HotKeys(redis_client, self.keys, sample_rate=settings.hot_sample_rate, rand=rand,
                           flush_seconds=hot_flush_seconds)
        self.metrics = Metrics(redis_client, self.keys)
        self.clock = clock
        self.rand = rand
        self.xfetch_beta = xfetch_beta
        self.breaker = Breaker(redis_client, settings.cache_backoff)
        from redis.exceptions import RedisClusterException, RedisError

        # Any Redis failure (transport, auth, OOM, protocol; a cluster with no reachable node, which redis-py
        # does not raise as a RedisError) means "no cache", never "no answer".
        self._redis_errors = (RedisError, RedisClusterException, OSError)
        self._acquire = redis_client.register_script(ACQUIRE)
        self._take_slot = redis_client.register_script(TAKE_SLOT)
        self._fill = redis_client.register_script(FILL)
        self._warm = redis_client.register_script(WARM)
        self._invalidate = redis_client.register_script(INVALIDATE)
        self.near = None if settings.local_max_items <= 0 else NearCache(
            redis_client, self.keys.root, settings.local_max_items, self.metrics, clock=clock,
            cluster=self.breaker.cluster)
        self.read_budget = read_budget_seconds(settings)
        self.leases = LeaseKeeper(redis_client, lease_ms=settings.lease_ms, budget_seconds=self.read_budget)

    # -- public API ----------------------------------------------------------
    def fetch(self, name: str) -> FetchResult:
        """Read one summary: from the cache on a hit, else from DynamoDB (and fill)."""
        start = time.perf_counter()
        key = self.keys.summary(name)  # also validates the name
        shard = self.breaker.shard(key)
        if self.breaker.open(shard):
            return self._from_db(name, start, UNAVAILABLE)
        near = self.near
        if near is not None:
            local = near.get(key)
            if local is not None:  # no round trip; the read still counts toward hot keys
                self._note_local(name)
                return FetchResult(name, local.summary, "cache", (time.perf_counter() - start) * 1000.0, HIT)
            ticket = near.ticket()
        try:
            raw = self._get_and_track(key, name)
            if raw is not None:
                entry = CacheEntry.decode(raw)
                if near is not None:
                    near.put(key, entry, ticket)
                if xfetch_due(entry, now=self.clock(), beta=self.xfetch_beta, rand=self.rand):
                    refreshed = self._refresh_early(name, start)
                    if refreshed is not None:
                        return refreshed
                return FetchResult(name, entry.summary, "cache", (time.perf_counter() - start) * 1000.0, HIT)
            return self._miss(name, start)
        except self._redis_errors as exc:
            self.breaker.trip(shard, exc)
            return self._from_db(name, start, UNAVAILABLE)

    def invalidate(self, name: str, *, min_version: int | None = None) -> bool:
        """Delete a name's cached summary and void its lease (delete on write).

        ``min_version`` raises the floor, so no reader can store a version older
        than the write that just happened. Returns True if a value was removed.
        Errors propagate: a writer must know when invalidation failed.
        """
        removed = self._invalidate(
            keys=self.keys.name_keys(name),
            args=["" if min_version is None else int(min_version), self._floor_ttl_ms(), 0],
        )
        self.metrics.incr("invalidations")
        self._forget_locally([self.keys.summary(name)])
        return bool(removed)

    def invalidate_many(
        self, names: Iterable[str], *, hold_off_ms: int = 0, also: Callable[[Pipeline], None] | None = None,
    ) -> int:
        """Invalidate several names in one round trip per shard (a pipeline of the same atomic script).

        No floor is raised (loaded items carry no version). The change feed passes
        ``hold_off_ms``: no fill of these names is stored for that long (the index
        may lag). ``also(pipe)`` queues the caller's bookkeeping on the same round
        trip. Returns how many values were removed; a Redis error propagates.
        """
        names = list(dict.fromkeys(names))
        if not names:
            return 0

        def bookkeeping(pipe: Pipeline) -> None:
            self.metrics.queue_incr(pipe, {"invalidations": len(names)})
            if also is not None:
                also(pipe)

        calls = [(self.keys.name_keys(name), ["", self._floor_ttl_ms(), int(hold_off_ms)]) for name in names]
        removed = sum(int(r) for r in eval_pipelined(self.redis, self._invalidate, calls, bookkeeping))
        self._forget_locally([keys[0] for keys, _ in calls])
        return removed

    def store_many(self, summaries: Iterable[tuple[str, Summary | None, float]]) -> int:
        """Write precomputed summaries ``(name, summary_or_None, fill_seconds)``: one round trip per shard.

        One WARM call per name (one slot each), pipelined; the process's pending
        counters ride along. Used by the warmer; an unreachable cache raises
        TransportError (retryable). Entries older than a writer's floor, or with
        a fill in flight, are skipped. Returns how many were stored.
        """
        calls = []
        for name, summary, delta in summaries:
            entry, ttl_ms = self._entry(summary, delta)
            calls.append((self.keys.name_keys(name), [entry.encode(), ttl_ms, entry.version]))
        if not calls:
            return 0
        from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError

        pending = self.metrics.drain()
        try:
            stored = sum(int(r) for r in eval_pipelined(
                self.redis, self._warm, calls, lambda pipe: self.metrics.record(pipe, pending, self.clock())))
        except AuthenticationError:
            self.metrics.restore(pending)
            raise
        except (ConnectionError, TimeoutError, OSError) as exc:
            self.metrics.restore(pending)
            # The warm's reads are done and cheap to redo: a cache outage is worth a retry.
            raise TransportError(f"cannot reach the cache's Redis: {exc}") from exc
        self.metrics.tally("fills", stored)
        self._forget_locally([keys[0] for keys, _ in calls])
        return stored

    def flush(self) -> None:
        """Send the read tallies and counters still held in memory (at exit, after a task, before ranking)."""
        counts, pending = self.hot.drain(), self.metrics.drain()
        if not counts and not pending:
            return
        pipe = self.redis.pipeline(transaction=False)
        self._queue_tallies(pipe, counts, pending)
        try:
            pipe.execute()
        except self._redis_errors:
            self.hot.restore(counts)
            self.metrics.restore(pending)

    def peek(self, name: str) -> Any:
        """The cached entry for ``name`` without tracking or filling, or NO_VALUE."""
        raw = self.redis.get(self.keys.summary(name))
        return NO_VALUE if raw is None else CacheEntry.decode(raw)

    # -- internals -------------------------------------------------------------
    def _get_and_track(self, key: str, name: str) -> bytes | str | None:
        counts = self.hot.note(name)
        if counts is None:
            return self.redis.get(key)
        if self.breaker.cluster:
            # The tallies' keys live on other shards: flushing them must not fail (or slow) this read.
            self.hot.restore(counts)
            value = self.redis.get(key)
            self.flush()
            return value
        # Due to flush: the tallies ride in this read's round trip.
        pending = self.metrics.drain()
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(key)
        self._queue_tallies(pipe, counts, pending)
        try:
            return pipe.execute()[0]
        except BaseException:
            self.hot.restore(counts)
            self.metrics.restore(pending)
            raise

    def _forget_locally(self, keys: list[str]) -> None:
        if self.near is not None:  # this process reads its own writes at once, not when the pushes arrive
            self.near.invalidate(keys)

    def _note_local(self, name: str) -> None:
        counts = self.hot.note(name)
        if counts is not None:  # due: send the tallies (best effort) as a Redis read would have
            self.hot.restore(counts)
            self.flush()

    def _queue_tallies(self, pipe: Pipeline, counts: Counter[str], pending: Counter[str]) -> None:
        now = self.clock()
        if self.near is not None:
            pending["l1_hits"] += self.near.take_hits()
        if counts:
            self.hot.record(pipe, counts, now)
            pending = pending + Counter(reads=sum(counts.values()))
        self.metrics.record(pipe, pending, now)

    def _miss(self, name: str, start: float) -> FetchResult:
        # Waiting is bounded by how long the holder's read can take, not by a guess shorter than it.
        deadline = start + self.read_budget
        token = secrets.token_hex(8)
        polls = 0
        keys = [self.keys.summary(name), self.keys.lease(name), self.keys.hold(name)]
        while True:
            got = self._acquire(keys=keys, args=[token, self.settings.lease_ms])
            if got[0] == 1:
                entry = CacheEntry.decode(got[1])
                return self._result(name, entry.summary, "cache", start, WAITED if polls else HIT)
            if got[0] == 2:
                self.metrics.tally("misses")
                return self._fill_with_lease(name, token, start, MISS, deadline=deadline)
            if got[0] == 3:  # hold-off after a change-feed invalidation: serve, do not store
                self.metrics.tally("misses")
                self.metrics.tally("refused_hold")
                return self._from_db(name, start, MISS)
            # Another caller is filling: wait for its value rather than read DynamoDB too.
            if not polls:
                self.metrics.tally("waits")
            polls += 1
            if not self._pause(polls, deadline):
                self.metrics.tally("wait_timeouts")
                return self._from_db(name, start, WAITED)

    def _pause(self, polls: int, deadline: float) -> bool:
        """Sleep before poll ``polls``; False once ``deadline`` has passed."""
        now = time.perf_counter()
        if now >= deadline:
            return False
        # Jittered, so that the waiters of one hot key do not poll in step; never past the deadline.
        time.sleep(min(LEASE_POLL.delay(polls, random.random), deadline - now))
        return True

    def _take_fill_slot(self, token: str, deadline: float) -> bool:
        """Wait for one of the CACHE_MAX_FILLS slots, holding the lease (kept alive meanwhile).

        The name's other readers keep waiting on the lease, so a cold cache sends
        DynamoDB at most CACHE_MAX_FILLS reads at once. False if no slot came up
        within the read budget: the read then goes ahead anyway (counted).
        """
        polls = 0
        slots = self.keys.fill_slots()
        while not self._take_slot(keys=[slots], args=[token, self.settings.lease_ms, self.settings.max_fills]):
            if not polls:
                self.metrics.tally("fill_slot_waits")
            polls += 1
            if not self._pause(polls, deadline):
                self.metrics.tally("wait_timeouts")
                return False
        return True

    def _refresh_early(self, name: str, start: float) -> FetchResult | None:
        token = secrets.token_hex(8)
        lease = self.redis.set(self.keys.lease(name), token, nx=True, px=self.settings.lease_ms)
        if not lease:
            return None  # someone else is refreshing: serve the current value
        self.metrics.tally("early_refreshes")
        return self._fill_with_lease(name, token, start, REFRESHED)

    def _fill_with_lease(self, name: str, token: str, start: float, status: str, *,
                         deadline: float | None = None) -> FetchResult:
        lease = self.keys.lease(name)
        self.leases.hold(token, lease)
        has_slot = False
        try:
            if self.settings.max_fills > 0 and deadline is not None:
                has_slot = self._take_fill_slot(token, deadline)
                if has_slot:
                    self.leases.hold_slot(token, self.keys.fill_slots())
            t0 = time.perf_counter()
            summary = self.repo.get_summary(name)
        except BaseException:
            self.leases.release(token)  # a waiter takes over now, not when the lease would have lapsed
            raise
        delta = time.perf_counter() - t0
        self.leases.done(token)
        entry, ttl_ms = self._entry(summary, delta)
        try:
            outcome = int(self._fill(keys=self.keys.name_keys(name),
                                     args=[token, entry.encode(), ttl_ms, entry.version]))
            self.metrics.tally(FILL_OUTCOMES[outcome])
            self.metrics.tally("fill_us", int(delta * 1e6))
        except self._redis_errors as exc:
            # The read itself succeeded; a full or failing cache must not fail it (the slot lapses by itself).
            log.warning("cache fill for %r failed: %s", name, exc)
        return self._result(name, summary, "db", start, status)

    def _entry(self, summary: Summary | None, delta: float) -> tuple[CacheEntry, int]:
        if summary is None:
            ttl = float(self.settings.negative_ttl)
        else:
            ttl = self.settings.cache_ttl * (1.0 + self.settings.cache_ttl_jitter * self.rand())
        entry = CacheEntry(
            summary=summary,
            version=summary.version if summary is not None else 0,
            delta=delta,
            expires_at=self.clock() + ttl,
        )
        return entry, max(1, int(ttl * 1000))

    def _floor_ttl_ms(self) -> int:
        # The floor must outlive any value that could still be filled from an old read.
        return int(self.settings.cache_ttl * (1.0 + self.settings.cache_ttl_jitter) * 1000) + 60_000

    def _from_db(self, name: str, start: float, status: str) -> FetchResult:
        return self._result(name, self.repo.get_summary(name), "db", start, status)

    def _result(self, name: str, summary: Summary | None, source: str, start: float, status: str) -> FetchResult:
        # A lazily built DynamoDB client's one-time construction is not this read's latency (service.LazyRepository).
        take = getattr(self.repo, "take_setup_seconds", None)
        setup_ms = take() * 1000.0 if take is not None else 0.0
        return FetchResult(name=name, summary=summary, source=source, cache=status, setup_ms=setup_ms,
                           latency_ms=(time.perf_counter() - start) * 1000.0 - setup_ms)

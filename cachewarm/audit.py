"""The consistency audit: re-read a rotating sample of cached summaries and drop the ones that differ.

Why a sample, not a sweep: the sweep it replaces re-read the version of *every*
cached summary once a minute, so its cost grew with the cache (O(cache) reads a
minute), and it was blind to writes that leave ``version`` alone (another
application's writes, a bulk load's overwrite). Writes are now invalidated as
they happen (``review add`` synchronously, everything else through the table's
change feed); the audit is the safety net behind both and the measurement of
how well they work: each run takes the next ``sample`` cached summaries, reads
each one again from DynamoDB, compares the *whole* summary (restaurant
attributes and the 5 newest reviews), and invalidates what differs. Its
``stale_fraction``, summed over time in the ``audit_checked``/``audit_stale``
counters, estimates the share of cached summaries that are stale at any moment.

How it rotates: a ``SCAN`` over ``<prefix>:v2:{*}:sum`` (on a Redis Cluster, over
each primary in turn) whose position is kept in Redis between runs
(``<prefix>:v2:stats:{audit}:cursor``), so successive runs
continue where the last one stopped and one full rotation (a *cycle*, ending in
the run that reports ``wrapped``) sees every summary that stayed cached
throughout at least once (SCAN's guarantee; exactly once unless Redis rehashes
meanwhile). SCAN may hand back more matches than a run needs: the extra keys
wait in ``<prefix>:v2:stats:{audit}:pending`` for the next run instead of being
skipped. A run ends when it has ``sample`` keys, when the cursor comes back to
0 (the cycle is complete: the next run starts a new one), or after
:data:`MAX_SCAN_CALLS` SCAN calls, since on an instance shared with the Celery
broker most keys may not be ours. So a run costs O(sample) DynamoDB reads and a
bounded number of Redis calls, whatever the size of the cache.

Every key the audit owns has a TTL (:data:`STATE_TTL_SECONDS`): an audit that
stops running leaves nothing behind, and a lost cursor only restarts the rotation.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from cachewarm.cache import CacheAside, CacheEntry, SummarySource
from cachewarm.errors import InvalidNameError, TransportError
from cachewarm.model import Summary
from cachewarm.shards import scan_step

#: Lifetime of the rotation's state (cursor and pending keys), renewed by every run.
#: Far longer than the schedule (a minute), short enough that a retired audit leaves nothing.
STATE_TTL_SECONDS = 24 * 3600
#: Bounds of SCAN's COUNT hint. COUNT is how many slots of the keyspace one call
#: walks, matching or not: at least the sample, so that one call usually suffices
#: when the instance holds mostly summaries; capped so that one call stays short
#: (SCAN blocks the server for its whole COUNT).
MIN_SCAN_COUNT = 100
MAX_SCAN_COUNT = 1000
#: SCAN calls one run may make. Bounds a run's Redis work on an instance where
#: our summaries are a small minority (the broker's keys, other tenants): the
#: run then audits fewer summaries, and the next one goes on from there.
MAX_SCAN_CALLS = 32
#: DynamoDB reads in flight. A few hide the read latency; more would only
#: compete with the reads the cache exists to serve.
READ_THREADS = 4


@dataclass
class AuditReport:
    """What one audit run found (the ``cachewarm.invalidate_stale`` task's result)."""

    checked: int = 0  # cached entries compared with DynamoDB (expired ones are not counted)
    stale: list[str] = field(default_factory=list)  # names whose cached entry differed, now invalidated
    stale_fraction: float | None = None  # len(stale) / checked; None when nothing was checked
    scan_calls: int = 0
    wrapped: bool = False  # the rotation completed a cycle in this run (the cursor came back to 0)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def cursor_key(engine: CacheAside) -> str:
    """Where the rotation's SCAN position is kept (text, with a TTL; see :func:`cachewarm.shards.scan_step`).

    The cursor and the pending list share the hash tag ``{audit}``: they are saved
    together in one MULTI/EXEC, which a Redis Cluster allows only within one slot.
    """
    return engine.keys.stats("{audit}:cursor")


def pending_key(engine: CacheAside) -> str:
    """The list of keys a SCAN returned beyond a run's sample, audited first by the next run."""
    return engine.keys.stats("{audit}:pending")


def run_audit(
    engine: CacheAside,
    repo: SummarySource,
    sample: int,
    *,
    max_scan_calls: int = MAX_SCAN_CALLS,
) -> AuditReport:
    """Audit the next ``sample`` cached summaries of the rotation; invalidate each one that is stale.

    A cached entry is stale when it differs from what ``repo.get_summary(name)``
    returns now: any restaurant attribute, any of the 5 newest reviews, a cached
    "not found" for a restaurant that exists, or a summary of a restaurant that
    no longer does. Each stale name is invalidated with ``engine.invalidate``
    (which also voids its fill lease). Entries that expired between SCAN and
    MGET are skipped and not counted. The counters ``audit_checked`` and
    ``audit_stale`` of the current minute are incremented (``cachewarm stats``).

    A mismatch can be a false positive: the audit reads GSI1, which is
    eventually consistent, so right after a write its read can be older than a
    cached entry that was already refilled from newer data. That costs one
    needless invalidation (the next read refills), never a wrong answer. Two
    runs at the same time (beat's and ``cachewarm invalidate --stale``) may
    audit the same keys, or one may skip part of a cycle: both are harmless.

    The rotation's position is saved only after the invalidations, so a run
    that fails (DynamoDB or Redis unavailable) is redone on retry, not skipped.
    An unreachable cache raises :class:`~cachewarm.errors.TransportError`
    (retryable); DynamoDB's errors are the repository's.
    """
    if sample < 1:
        raise ValueError(f"sample must be at least 1, got {sample}")
    start = time.perf_counter()
    report = AuditReport()
    with _cache_errors():
        keys, state = _next_keys(engine, sample, max_scan_calls, report)
        values = _get_all(engine, keys)
        cached: dict[str, CacheEntry | None] = {}
        for key, raw in zip(keys, values, strict=True):
            if raw is None:
                continue  # expired (or invalidated) since SCAN: nothing cached, nothing to check
            name = _name(engine, key)
            if name is not None:
                cached[name] = _decode(raw)
    fresh = _read_all(repo, [name for name, entry in cached.items() if entry is not None])
    report.checked = len(cached)
    report.stale = [name for name, entry in cached.items() if entry is None or not _same(entry, fresh[name])]
    with _cache_errors():
        for name in report.stale:
            engine.invalidate(name)
        engine.metrics.incr_many({"audit_checked": report.checked, "audit_stale": len(report.stale)})
        _save_state(engine, *state)
    report.stale_fraction = round(len(report.stale) / report.checked, 6) if report.checked else None
    report.seconds = round(time.perf_counter() - start, 4)
    return report


# -- the rotation --------------------------------------------------------------------
def _next_keys(
    engine: CacheAside, sample: int, max_scan_calls: int, report: AuditReport,
) -> tuple[list[bytes], tuple[str, list[bytes]]]:
    """This run's keys (at most ``sample``, no repeats) and the state to save after it: (cursor, pending)."""
    pipe = engine.redis.pipeline(transaction=False)
    pipe.get(cursor_key(engine))
    pipe.lrange(pending_key(engine), 0, -1)
    raw_cursor, pending = pipe.execute()
    cursor = _parse_position(raw_cursor)
    # Cursor 0 with keys pending means the SCAN finished last run and only its
    # leftovers remain: this run drains them and completes the cycle, without
    # starting a new SCAN. Cursor 0 and nothing pending is the start of a cycle.
    starting = cursor == "0" and not pending
    chosen = dict.fromkeys(pending[:sample])
    pending = pending[sample:]
    count = min(max(sample, MIN_SCAN_COUNT), MAX_SCAN_COUNT)
    match = engine.keys.summary_pattern()
    while len(chosen) < sample and report.scan_calls < max_scan_calls and (
            cursor != "0" or (starting and report.scan_calls == 0)):
        cursor, batch = scan_step(engine.redis, cursor, match=match, count=count)
        report.scan_calls += 1
        for key in batch:
            # SCAN may return a key twice (a rehash mid-cycle): audit it once per run.
            if key in chosen:
                continue
            if len(chosen) < sample:
                chosen[key] = None
            else:
                pending.append(key)  # beyond this run's sample: the next run's first keys
    report.wrapped = cursor == "0" and not pending
    return list(chosen), (cursor, pending)


def _parse_position(raw: bytes | str | None) -> str:
    # A missing (expired) or unreadable position restarts the rotation: at worst one cycle is repeated.
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "0")
    parts = text.split(":")
    if len(parts) > 2 or not all(part.isdigit() for part in parts):
        return "0"
    return text


def _get_all(engine: CacheAside, keys: list[bytes]) -> list[Any]:
    """The keys' values (a pipeline of GETs: MGET cannot span a cluster's slots)."""
    if not keys:
        return []
    pipe = engine.redis.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    return list(pipe.execute())


def _save_state(engine: CacheAside, cursor: str, pending: list[bytes]) -> None:
    """Store the cursor and the pending keys together (MULTI/EXEC), both with a TTL."""
    pipe = engine.redis.pipeline(transaction=True)
    pipe.set(cursor_key(engine), cursor, ex=STATE_TTL_SECONDS)
    pipe.delete(pending_key(engine))
    if pending:
        pipe.rpush(pending_key(engine), *pending)
        pipe.expire(pending_key(engine), STATE_TTL_SECONDS)
    pipe.execute()


# -- comparing ---------------------------------------------------------------------------
def _name(engine: CacheAside, key: bytes | str) -> str | None:
    # A key no name of ours encodes to (written by hand, say) is left to its TTL:
    # failing on it would stop the rotation at this key on every run.
    try:
        name = engine.keys.name_from_summary_key(key)
        return name if engine.keys.summary(name) == (key.decode() if isinstance(key, bytes) else key) else None
    except (ValueError, InvalidNameError):
        return None


def _decode(raw: bytes | str) -> CacheEntry | None:
    # A value we cannot read (corrupt, or written by an incompatible version) is
    # stale by definition: None marks it for invalidation without a DynamoDB read.
    try:
        return CacheEntry.decode(raw)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _read_all(repo: SummarySource, names: list[str]) -> dict[str, Summary | None]:
    """Each name's summary as DynamoDB has it now, a few reads at a time."""
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(names))) as pool:
        return dict(zip(names, pool.map(repo.get_summary, names), strict=True))


def _same(entry: CacheEntry, fresh: Summary | None) -> bool:
    """Whether a cached entry still says what DynamoDB says (the whole summary, or both "not found")."""
    if entry.summary is None or fresh is None:
        return entry.summary is None and fresh is None
    # The cached side went through JSON; put the fresh side through it too, so
    # that only data differs, never representation (tuples and lists, say).
    return entry.summary.to_dict() == json.loads(json.dumps(fresh.to_dict(), ensure_ascii=False))


@contextlib.contextmanager
def _cache_errors() -> Iterator[None]:
    """An unreachable cache is worth a retry (TransportError); other Redis errors propagate as they are."""
    from redis.exceptions import AuthenticationError, ConnectionError, TimeoutError

    try:
        yield
    except AuthenticationError:
        raise
    except (ConnectionError, TimeoutError) as exc:
        raise TransportError(f"cannot reach the cache's Redis: {exc}") from exc

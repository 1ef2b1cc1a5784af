"""Invalidation: by name, or everything we own.

Only ``SCAN`` (with ``COUNT``) and ``UNLINK`` on our own prefix: never ``KEYS``
or ``FLUSH*`` on an instance that is also the broker. A name is always turned
into its exact key, so a name that looks like a glob (``Star*``) can only ever
remove its own key. Finding what changed at the source is the consistency
audit's job (:mod:`cachewarm.audit`), a bounded sample per run rather than a
sweep of the whole cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cachewarm.cache import CacheAside

SCAN_COUNT = 500


def invalidate_names(engine: CacheAside, names: Iterable[str]) -> int:
    """Invalidate each name's exact key (and void its lease). Returns how many values were removed."""
    return sum(engine.invalidate(name) for name in dict.fromkeys(names))


def _scan_batches(engine: CacheAside, count: int = SCAN_COUNT) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in engine.redis.scan_iter(match=engine.keys.summary_pattern(), count=count):
        batch.append(key)
        if len(batch) >= count:
            yield batch
            batch = []
    if batch:
        yield batch


def invalidate_all(engine: CacheAside) -> int:
    """UNLINK every cached summary under our prefix, in SCAN-sized batches."""
    removed = 0
    for batch in _scan_batches(engine):
        removed += int(engine.redis.unlink(*batch))
    engine.metrics.incr("invalidations", removed)
    return removed


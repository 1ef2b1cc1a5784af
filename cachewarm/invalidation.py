"""Invalidation: by name, everything we own, or only what changed at the source.

Only ``SCAN`` (with ``COUNT``) and ``UNLINK`` on our own prefix: never ``KEYS``
or ``FLUSH*`` on an instance that is also the broker. A name is always turned
into its exact key, so a name that looks like a glob (``Star*``) can only ever
remove its own key.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from cachewarm.cache import CacheAside, CacheEntry
from cachewarm.repository import RestaurantRepository

SCAN_COUNT = 500


@dataclass
class StaleReport:
    """What an ``invalidate_stale`` pass found."""

    scanned: int = 0
    invalidated: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready form (the task's result)."""
        return asdict(self)


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


def invalidate_stale(engine: CacheAside, repo: RestaurantRepository) -> StaleReport:
    """Remove cached summaries whose restaurant's version differs from the table's.

    A cached "not found" for a restaurant that now exists, and a summary of a
    restaurant that no longer exists, are stale too.
    """
    start = time.perf_counter()
    report = StaleReport()
    for batch in _scan_batches(engine):
        raw_values = engine.redis.mget(batch)
        cached: dict[str, CacheEntry] = {}
        for key, raw in zip(batch, raw_values, strict=True):
            if raw is not None:
                cached[engine.keys.name_from_summary_key(key)] = CacheEntry.decode(raw)
        report.scanned += len(batch)
        current = repo.current_versions(list(cached))
        for name, entry in cached.items():
            version = current.get(name)
            exists_now, existed = version is not None, entry.summary is not None
            if exists_now != existed or (exists_now and version != entry.version):
                engine.invalidate(name, min_version=version if exists_now else None)
                report.invalidated.append(name)
    report.seconds = round(time.perf_counter() - start, 4)
    return report

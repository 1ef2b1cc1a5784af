"""Warm summaries into the cache: concurrent DynamoDB reads, one Redis round trip per chunk."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from cachewarm.cache import CacheAside
from cachewarm.keys import encode_name
from cachewarm.model import Summary

#: DynamoDB reads in flight per warm call. Enough to hide dynalite's and
#: DynamoDB's latency on a 2-core machine without starving the worker.
DEFAULT_CONCURRENCY = 8


@dataclass
class WarmReport:
    """What a warm did."""

    requested: int = 0
    warmed: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    skipped: int = 0  # a fill was in flight, or a writer's floor said our read was old
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready form (the task's result)."""
        return asdict(self)


def warm_names(
    engine: CacheAside,
    names: Sequence[str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[int, int], None] | None = None,
) -> WarmReport:
    """Read each name's summary from DynamoDB concurrently and store them in one pipeline.

    Names that do not exist are cached as not-found (briefly), like a read would.
    """
    start = time.perf_counter()
    unique = list(dict.fromkeys(names))
    for name in unique:
        encode_name(name)
    report = WarmReport(requested=len(unique))

    def read(name: str) -> tuple[str, Summary | None, float]:
        t0 = time.perf_counter()
        summary = engine.repo.get_summary(name)
        return name, summary, time.perf_counter() - t0

    results: list[tuple[str, Summary | None, float]] = []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(unique) or 1))) as pool:
        for done, item in enumerate(pool.map(read, unique), start=1):
            results.append(item)
            if progress is not None:
                progress(done, len(unique))
    stored = engine.store_many(results)
    for name, summary, _ in results:
        (report.warmed if summary is not None else report.not_found).append(name)
    report.skipped = len(results) - stored
    report.seconds = round(time.perf_counter() - start, 4)
    return report

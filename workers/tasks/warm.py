"""Warm tasks: decode arguments, call :mod:`cachewarm.warming`, own the retry policy."""

from __future__ import annotations

import logging

from cachewarm import service
from cachewarm.settings import get_settings
from cachewarm.warming import warm_names as warm_core
from workers.app import app
from workers.retry import IDEMPOTENT, RETRY_POLICY

log = logging.getLogger(__name__)


@app.task(name="cachewarm.warm_names", bind=True, **IDEMPOTENT, **RETRY_POLICY)
def warm_names(self, names: list[str]) -> dict:
    """Warm the given restaurant names (a bounded chunk) into the cache."""
    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            self.update_state(state="PROGRESS", meta={"done": done, "total": total})

    report = warm_core(service.engine(), [str(n) for n in names], progress=progress,
                       concurrency=get_settings().warm_concurrency)
    log.info(
        "warm_names: %d requested, %d warmed, %d not found, %d skipped in %.3fs",
        report.requested, len(report.warmed), len(report.not_found), report.skipped, report.seconds,
    )
    return report.to_dict()


@app.task(name="cachewarm.warm_hot", bind=True, ignore_result=False, **IDEMPOTENT, **RETRY_POLICY)
def warm_hot(self, top: int = 100, chunk_size: int = 100) -> dict:
    """Find the ``top`` hottest names and fan them out as ``warm_names`` chunks.

    Refreshing the hot set on a schedule shorter than the TTL keeps hot keys
    from ever going cold; XFetch covers the reads in between.
    """
    import time

    started = time.perf_counter()
    from celery import group

    from cachewarm.batching import chunked

    engine = service.engine()
    names = [name for name, _ in engine.hot.top(int(top), time.time())]
    chunks = chunked(names, int(chunk_size))
    if chunks:
        group(warm_names.s(chunk) for chunk in chunks).apply_async()
    log.info("warm_hot: %d hot names (top %d) queued as %d warm_names chunks in %.3fs",
             len(names), int(top), len(chunks), time.perf_counter() - started)
    return {"names": len(names), "chunks": len(chunks), "top": names[:20]}

"""Warm tasks: decode arguments, call :mod:`cachewarm.warming`, own the retry policy."""

from __future__ import annotations

import logging

from cachewarm import service
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

    report = warm_core(service.engine(), [str(n) for n in names], progress=progress)
    log.info(
        "warm_names: %d requested, %d warmed, %d not found, %d skipped in %.3fs",
        report.requested, len(report.warmed), len(report.not_found), report.skipped, report.seconds,
    )
    return report.to_dict()

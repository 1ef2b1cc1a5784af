"""Maintenance tasks: invalidate summaries whose source changed."""

from __future__ import annotations

import logging

from cachewarm import service
from cachewarm.invalidation import invalidate_stale as invalidate_stale_core
from workers.app import app
from workers.retry import IDEMPOTENT, RETRY_POLICY

log = logging.getLogger(__name__)


@app.task(name="cachewarm.invalidate_stale", **IDEMPOTENT, **RETRY_POLICY)
def invalidate_stale() -> dict:
    """SCAN our summaries, compare versions with the table, UNLINK the changed ones."""
    report = invalidate_stale_core(service.engine(), service.repository())
    log.info("invalidate_stale: scanned %d, invalidated %d in %.3fs",
             report.scanned, len(report.invalidated), report.seconds)
    return report.to_dict()

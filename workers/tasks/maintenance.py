"""Maintenance tasks: the consistency audit of cached summaries."""

from __future__ import annotations

import logging

from cachewarm import service
from cachewarm.audit import run_audit
from cachewarm.settings import get_settings
from workers.app import app
from workers.retry import IDEMPOTENT, RETRY_POLICY

log = logging.getLogger(__name__)


# The name predates the audit: beat entries and Flower refer to it, so it stays.
@app.task(name="cachewarm.invalidate_stale", **IDEMPOTENT, **RETRY_POLICY)
def invalidate_stale(sample: int | None = None) -> dict:
    """Audit the next ``sample`` cached summaries (default AUDIT_SAMPLE_SIZE) against DynamoDB; invalidate the stale."""
    settings = get_settings()
    report = run_audit(service.engine(), service.repository(), settings.audit_sample if sample is None else int(sample))
    log.info("invalidate_stale: audited %d, stale %d, %d SCAN calls%s in %.3fs", report.checked,
             len(report.stale), report.scan_calls, ", cycle complete" if report.wrapped else "", report.seconds)
    return report.to_dict()

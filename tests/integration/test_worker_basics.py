"""`celery -A workers worker` starts on the project's config and runs a real task."""

from __future__ import annotations

import pytest

from cachewarm import service
from cachewarm.cache import NO_VALUE
from tests.integration.test_foundation import put_items, restaurant, review

pytestmark = pytest.mark.integration


def test_worker_warms_names(worker, stack_env, table, live_settings, celery_client):
    put_items(table, [restaurant("A"), restaurant("B"), review("A", "1" * 40)])
    result = celery_client.send_task("cachewarm.warm_names", args=[["A", "B", "Missing"]])
    report = result.get(timeout=30)
    assert sorted(report["warmed"]) == ["A", "B"]
    assert report["not_found"] == ["Missing"]
    engine = service.engine(live_settings)
    assert engine.peek("A").summary.reviews[0]["id"] == "1" * 40
    assert engine.peek("B") is not NO_VALUE
    assert engine.fetch("A").source == "cache"
    assert "cachewarm.warm_names" in worker.log()

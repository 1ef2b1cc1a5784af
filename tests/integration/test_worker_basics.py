"""`celery -A workers worker` starts on the project's config and runs a real task."""

from __future__ import annotations

import pytest

from cachewarm import service
from cachewarm.cache import NO_VALUE
from tests.support.items import put_items, restaurant, review

pytestmark = pytest.mark.integration


@pytest.mark.engine_matrix
@pytest.mark.topology_matrix
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


def test_worker_warns_when_redis_could_evict_broker_keys(celery_proc, stack_env, tmp_path):
    from devstack.localstack import start_redis

    risky = start_redis(tmp_path / "risky", extra_args=["--maxmemory-policy", "allkeys-lru"])
    try:
        proc = celery_proc(["worker", "--loglevel=INFO", "--concurrency=1", "--without-mingle", "--without-gossip"],
                           {**stack_env, "REDIS_URL": risky.url})
        proc.wait_for("ready.")
        proc.wait_for("allkeys-lru")
        assert "volatile-lfu" in proc.log()
    finally:
        risky.stop()


def test_eviction_policy_messages():
    from cachewarm.eviction import eviction_warning

    assert eviction_warning("volatile-lfu") is None
    assert eviction_warning("noeviction") is None
    assert "allkeys-lru" in eviction_warning("allkeys-lru")
    assert "CONFIG" in eviction_warning(None)

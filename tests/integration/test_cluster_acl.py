"""The cache user of a scaled-out cache (``cacheMode=serverless|cluster``) on a real Redis Cluster.

``infra/cachewarm_infra/acl.py`` gives the cache user on a cluster the cluster protocol's
commands (``CLUSTER SLOTS``, ``ASKING``, ``READONLY``) and no ``SELECT``. Here that access
string is set with ``ACL SETUSER`` on every primary of a local 3-primary cluster, and the
cache engine, through redis-py's ``RedisCluster`` logged in as that user
(``CACHE_REDIS_MODE=cluster``, :func:`cachewarm.clients.cluster_client`), runs every path:
fill and hit, invalidate, warm, the change feed's batch, the audit, ``invalidate_all`` and
``stats``. No node's ``ACL LOG`` may show a refusal beyond the tolerated ``CONFIG GET``.
"""

from __future__ import annotations

import secrets
import time

import pytest
import redis

import tests.support.infra  # noqa: F401 - puts infra/ on sys.path for cachewarm_infra
from cachewarm.settings import Settings
from cachewarm_infra import acl
from devstack.redis_cluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = acl.DEFAULT_KEY_PREFIX
TOLERATED = {"config|get"}


class StandIn:
    """DynamoDB's answers, without DynamoDB: the ACL is what is under test."""

    def __init__(self):
        self.version = 1

    def get_summary(self, name):
        from cachewarm.model import Summary

        return Summary({"name": name, "version": self.version}, [])


def test_the_cache_engine_works_as_the_cluster_cache_user(tmp_path):
    from cachewarm import audit, change_capture, invalidation, stats
    from cachewarm.cache import NO_VALUE, CacheAside
    from cachewarm.clients import cluster_client
    from cachewarm.keys import KeySchema
    from cachewarm.model import Summary

    cluster = LocalCluster(tmp_path / "cluster").start()
    try:
        password = secrets.token_hex(16)
        access = acl.cache_access(PREFIX, "redis", cluster=True)
        nodes = [redis.Redis(port=port, decode_responses=True) for port in cluster.ports]
        for node in nodes:  # ElastiCache applies a user group's users to every node; so do we
            node.execute_command("ACL", "SETUSER", acl.CACHE_USER, "reset", *access.split(), f">{password}")
            node.acl_log_reset()
        url = f"redis://{acl.CACHE_USER}:{password}@127.0.0.1:{cluster.ports[0]}/0"
        client = cluster_client(url, timeout=2.0)
        repo = StandIn()
        engine = CacheAside(client, repo, Settings(key_prefix=PREFIX, cache_redis_url=url, cache_redis_mode="cluster"))
        names = [f"Warm {i}" for i in range(12)]
        assert engine.fetch("Thai Spot").source == "db" and engine.fetch("Thai Spot").cache == "hit"
        assert engine.invalidate("Thai Spot", min_version=2) and engine.peek("Thai Spot") is NO_VALUE
        stored = engine.store_many([(n, Summary({"name": n, "version": 3}, []), 0.01) for n in names])
        assert stored == len(names) and all(engine.fetch(n).cache == "hit" for n in names)
        keys_of_warm_1 = {"PK": {"S": "REST#Warm 1"}, "SK": {"S": "REST#Warm 1"}}
        record = {"eventName": "MODIFY", "dynamodb": {"Keys": keys_of_warm_1, "SequenceNumber": "1",
                                                       "ApproximateCreationDateTime": time.time()}}
        outcome = change_capture.handle_records([record], engine, hold_off_ms=50)
        assert (outcome.names, outcome.failed, outcome.error) == (["Warm 1"], [], None)
        engine.flush()
        repo.version = 3
        report = audit.run_audit(engine, repo, sample=20)
        assert report.checked == len(names) - 1 and report.wrapped and report.scan_calls >= 3  # every primary
        keys = KeySchema(prefix=PREFIX)
        stats.TaskRuns(client, keys).record("cachewarm.warm_names", task_id="t1", state="SUCCESS", runtime=0.1)
        collected = stats.collect(client, keys, task_names=["cachewarm.warm_names"])
        assert collected["errors"] == {}, collected["errors"]
        assert collected["memory"]["shards"] == 3 and collected["keys"]["summaries"] == len(names) - 1
        assert invalidation.invalidate_all(engine) == len(names) - 1
        refusals = [(entry["username"], entry["object"]) for node in nodes for entry in node.acl_log()]
        assert {obj for _, obj in refusals} <= TOLERATED, refusals
        for node in nodes:  # nothing outside the cache's namespace was written, on any shard
            assert all(key.startswith(f"{PREFIX}:v2:") for key in node.scan_iter(count=1000))
    finally:
        cluster.stop()

"""Issue 15: the cache on a Redis Cluster (ElastiCache cluster mode, Serverless), the broker on one node.

A local cluster of three redis-server primaries (``--cluster-enabled yes``,
formed by ``redis-cli --cluster create``, :mod:`devstack.redis_cluster`) holds
the cache with ``CACHE_REDIS_MODE=cluster``; the broker is the session's
standalone redis-server. The cache tests marked ``topology_matrix`` run on it
too; these are the end-to-end path and the loss of one primary.
"""

from __future__ import annotations

import json
import time

import pytest
import redis

from cachewarm import service
from cachewarm.keys import KeySchema
from cachewarm.settings import Settings
from devstack.redis_cluster import LocalCluster
from tests.support.items import put_items, restaurant, review

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMES = [f"Shard Spot {i:02d}" for i in range(24)]


def summaries_per_node(cluster: LocalCluster, keys: KeySchema) -> list[int]:
    """How many summary keys each primary holds (SCAN on each node itself)."""
    return [sum(1 for _ in redis.Redis(port=port).scan_iter(match=keys.summary_pattern(), count=1000))
            for port in cluster.ports]


@pytest.mark.parametrize("engine", ["cluster"], indirect=True)
def test_fill_hit_warm_write_and_invalidate_all_on_a_cluster(engine_stack, cli, stack_env, table, live_settings,
                                                              worker):
    cluster = engine_stack.cache_cluster
    assert cluster is not None and live_settings.cache_redis_mode == "cluster"
    keys = KeySchema(prefix=live_settings.key_prefix)
    put_items(table, [restaurant(n) for n in NAMES] + [review(n, f"{i:02d}" + "0" * 38) for i, n in enumerate(NAMES)])

    for name in NAMES[:12]:  # fill, then hit, through the CLI
        first = json.loads(cli("get", name, "--json", env=stack_env).stdout)
        second = json.loads(cli("get", name, "--json", env=stack_env).stdout)
        assert (first["source"], second["source"]) == ("db", "cache"), name
    warmed = cli("warm", *NAMES[12:], "--wait", "--json", env=stack_env)  # through the worker
    assert warmed.returncode == 0, warmed.stderr
    assert sorted(json.loads(warmed.stdout)["warmed"]) == sorted(NAMES[12:])
    spread = summaries_per_node(cluster, keys)
    assert sum(spread) == len(NAMES) and sum(1 for n in spread if n) >= 2, spread

    added = cli("review", "add", NAMES[0], "--user", "clustered", "--rating", "5", "--text", "on any shard",
                "--json", env=stack_env)
    assert added.returncode == 0, added.stderr
    body = json.loads(cli("get", NAMES[0], "--json", env=stack_env).stdout)
    assert body["reviews"][0]["username"] == "clustered"  # the write's invalidation reached the name's shard

    stats = json.loads(cli("stats", "--json", env=stack_env).stdout)
    assert stats["keys"]["summaries"] == len(NAMES) and stats["memory"]["shards"] == 3
    assert stats["windows"]["5m"]["fills"] >= len(NAMES) and not stats["errors"], stats["errors"]

    gone = cli("invalidate", "--all", env=stack_env)
    assert gone.returncode == 0, gone.stderr
    assert summaries_per_node(cluster, keys) == [0, 0, 0]
    for node in cluster.nodes:
        assert "CROSSSLOT" not in node.log_path.read_text(errors="replace")
    assert "CROSSSLOT" not in worker.log() and "RedisClusterException" not in worker.log()


def test_one_primary_down_its_names_come_from_dynamodb_the_others_still_hit(tmp_path, stack_env, table):
    cluster = LocalCluster(tmp_path / "cluster").start()
    try:
        env = {**stack_env, "CACHE_REDIS_URL": cluster.url, "CACHE_REDIS_MODE": "cluster"}
        settings = Settings.from_env(env)
        put_items(table, [restaurant(n) for n in NAMES])
        engine = service.engine(settings)
        for name in NAMES:
            assert engine.fetch(name).found
        keys = KeySchema(prefix=settings.key_prefix)
        lost = cluster.node_of(keys.summary(NAMES[0]))
        on_lost = [n for n in NAMES if cluster.node_of(keys.summary(n)) == lost]
        elsewhere = [n for n in NAMES if n not in on_lost]
        assert on_lost and elsewhere

        cluster.nodes[lost].kill()
        time.sleep(cluster.node_timeout_ms / 1000 + 1)  # the others mark it failed and keep serving their slots
        reads = {name: engine.fetch(name) for name in NAMES}
        for name in on_lost:
            assert reads[name].found and (reads[name].source, reads[name].cache) == ("db", "unavailable"), name
            assert reads[name].latency_ms < settings.redis_timeout * 1000 + 400, reads[name]
        for name in elsewhere:
            assert (reads[name].source, reads[name].cache) == ("cache", "hit"), (name, reads[name])
        # The lost shard is skipped for the backoff, not paid for on every read; the others keep hitting.
        again = [engine.fetch(name) for name in on_lost]
        assert all(r.cache == "unavailable" for r in again)
        assert max(r.latency_ms for r in again) < settings.redis_timeout * 1000
        assert all(engine.fetch(name).cache == "hit" for name in elsewhere)
    finally:
        cluster.stop()

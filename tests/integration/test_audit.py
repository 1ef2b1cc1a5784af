"""The consistency audit on real redis-server and dynalite: 1,000 cached summaries, 10 made stale behind the cache.

The audit reads DynamoDB through a counting proxy, so the test sees what each
run really costs: at most ``K`` Query requests, whatever the size of the cache.
"""

from __future__ import annotations

import json
import random
import threading

import pytest

from cachewarm import service
from cachewarm.audit import MAX_SCAN_CALLS, AuditReport, cursor_key, run_audit
from cachewarm.clients import dynamodb_client
from cachewarm.repository import RestaurantRepository
from cachewarm.settings import Settings
from cachewarm.warming import warm_names
from devstack.dynamo_proxy import DynamoProxy
from tests.support.items import restaurant, review
from tests.support.tables import batch_put


def get_all(client, keys):
    """The keys' values, in order: a pipeline of GETs (MGET cannot span a cluster's slots)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    return pipe.execute()


pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.engine_matrix, pytest.mark.topology_matrix]

RESTAURANTS = 1000
K = 100


class Recording:
    """The proxied repository, remembering every name the audit re-read."""

    def __init__(self, repo: RestaurantRepository):
        self.repo, self.names, self.lock = repo, [], threading.Lock()

    def get_summary(self, name):
        with self.lock:
            self.names.append(name)
        return self.repo.get_summary(name)


def test_an_audit_cycle_finds_exactly_the_stale_summaries_at_k_reads_per_run(
        cli, stack_env, live_settings, table, dynalite):
    names = [f"Audit {i:04d}" for i in range(RESTAURANTS)]
    items = []
    for i, name in enumerate(names):
        items += [restaurant(name, five_stars=1), review(name, f"{i:04d}{0:036d}", "2023-05-01T00:00:00")]
    batch_put(table, items)

    engine = service.engine(live_settings)
    for start in range(0, RESTAURANTS, 100):  # every summary filled through the cache
        assert len(warm_names(engine, names[start:start + 100]).warmed) == 100
    summary_keys = [engine.keys.summary(name) for name in names]
    assert all(get_all(engine.redis, summary_keys))

    # Behind the cache's back, no invalidation and no version bump: 5 restaurants change an
    # attribute, 5 get a review newer than every cached one.
    rng = random.Random(7)
    changed = rng.sample(names, 10)
    for name in changed[:5]:
        table.client.update_item(
            TableName=table.table_name, Key={"PK": {"S": f"REST#{name}"}, "SK": {"S": f"REST#{name}"}},
            UpdateExpression="SET address = :a", ExpressionAttributeValues={":a": {"S": "99 Moved Street"}})
    batch_put(table, [review(name, "f" * 40, "2030-01-01T00:00:00", user="latecomer") for name in changed[5:]])

    with DynamoProxy(dynalite.url) as proxy:
        proxied = Settings.from_env({**stack_env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url})
        recording = Recording(RestaurantRepository(dynamodb_client(proxied), proxied.table_name))
        reports: list[AuditReport] = []
        while not reports or not reports[-1].wrapped:
            assert len(reports) < 20, f"no full rotation in 20 runs: {[r.to_dict() for r in reports[-3:]]}"
            before = proxy.counts["Query"]
            reports.append(run_audit(engine, recording, K))
            queries = proxy.counts["Query"] - before
            assert queries == reports[-1].checked <= K, (queries, reports[-1].to_dict())
            assert reports[-1].scan_calls <= MAX_SCAN_CALLS

    checked = sum(r.checked for r in reports)
    stale = [name for r in reports for name in r.stale]
    assert 9 <= len(reports) <= 12  # about RESTAURANTS / K runs per cycle
    assert sorted(set(recording.names)) == names  # the rotation saw every cached summary...
    assert checked == len(recording.names) and RESTAURANTS <= checked <= RESTAURANTS + 20  # ...about once
    assert sorted(stale) == sorted(changed)
    assert sum(r.stale_fraction * r.checked for r in reports if r.checked) == pytest.approx(10)
    assert len(stale) / checked == pytest.approx(0.01, abs=0.0005)
    assert 0 < engine.redis.ttl(cursor_key(engine)) <= 24 * 3600

    # After one full rotation none of the 10 stale summaries is cached; the 990 others still are.
    values = dict(zip(names, get_all(engine.redis, summary_keys), strict=True))
    assert [name for name in changed if values[name] is not None] == []
    assert [name for name in names if name not in changed and values[name] is None] == []

    done = cli("stats", "--json", env=stack_env)
    assert done.returncode == 0, done.stderr
    consistency = json.loads(done.stdout)["consistency"]
    for window in ("1h", "24h"):
        counted = consistency["windows"][window]
        assert counted["checked"] == checked and counted["stale"] == 10
        assert counted["stale_fraction"] == pytest.approx(0.01, abs=0.0005)
    text = cli("stats", env=stack_env)
    assert text.returncode == 0 and "consistency (audit and change feed)" in text.stdout

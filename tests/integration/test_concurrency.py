"""Issue 4: single-flight across processes, no stale sets, invalidation, beat, warming through workers."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import threading
import time
from datetime import datetime

import pytest
import redis

from cachewarm import service
from cachewarm.cache import NO_VALUE, CacheAside
from cachewarm.clients import cache_redis, dynamodb_client
from cachewarm.repository import RestaurantRepository
from cachewarm.settings import Settings
from devstack.dynamo_proxy import DynamoProxy
from tests.support.items import put_items, restaurant, review

pytestmark = [pytest.mark.integration, pytest.mark.engine_matrix, pytest.mark.topology_matrix]


def _read_once(env: dict, name: str, barrier, out) -> None:
    settings = Settings.from_env(env)
    engine = service.engine(settings)
    barrier.wait(30)
    result = engine.fetch(name)
    out.put((result.source, result.cache, result.found))


def test_sixteen_processes_on_one_cold_name_cost_one_fill(stack_env, table, dynalite):
    put_items(table, [restaurant("Cold"), review("Cold", "c" * 40)])
    with DynamoProxy(dynalite.url) as proxy:
        proxy.faults.delay["Query"] = 0.5  # DynamoDB answering slowly
        env = {**stack_env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url}
        ctx = multiprocessing.get_context("spawn")
        barrier, out = ctx.Barrier(16), ctx.Queue()
        procs = [ctx.Process(target=_read_once, args=(env, "Cold", barrier, out)) for _ in range(16)]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(10)
        assert all(found for _, _, found in results)
        assert proxy.counts["Query"] == 1, proxy.counts
        assert sum(1 for source, _, _ in results if source == "db") == 1
        assert sum(1 for _, cache, _ in results if cache == "waited") == 15


def test_stale_set_race_never_leaves_the_old_summary(cli, stack_env, table, dynalite, live_settings):
    put_items(table, [restaurant("Racy"), review("Racy", "0" * 40, "2020-01-01T00:00:00")])
    with DynamoProxy(dynalite.url) as proxy:
        gate = threading.Event()
        proxy.faults.hold["Query"] = gate  # the reader's Query has read the OLD data; its answer is held
        # A read timeout longer than the staged race: on a busy machine the CLI's write can take more than the
        # default 5 s, and botocore would then retry the held Query after the write, reading the new data.
        slow_settings = Settings.from_env({**stack_env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url,
                                           "DYNAMODB_TIMEOUT_SECONDS": "60"})
        slow = CacheAside(cache_redis(slow_settings),
                          RestaurantRepository(dynamodb_client(slow_settings), slow_settings.table_name),
                          slow_settings)
        out = []
        reader = threading.Thread(target=lambda: out.append(slow.fetch("Racy")))
        reader.start()
        assert proxy.entered["Query"].wait(10)
        added = cli("review", "add", "Racy", "--user", "newbie", "--rating", "5", "--text", "Great now",
                    "--json", env=stack_env)
        assert added.returncode == 0, added.stderr
        new_id = json.loads(added.stdout)["review"]["id"]
        gate.set()
        reader.join(10)
        assert [r["id"] for r in out[0].summary.reviews] == ["0" * 40]  # the reader saw the old data
        assert service.engine(live_settings).peek("Racy") is NO_VALUE  # ...and did not cache it
    body = json.loads(cli("get", "Racy", "--json", env=stack_env).stdout)
    assert body["reviews"][0]["id"] == new_id and body["reviews"][0]["username"] == "newbie"
    assert body["restaurant"]["five_stars"] == 1 and body["restaurant"]["version"] == 1


def test_review_add_invalidates_before_returning(cli, stack_env, table, live_settings):
    put_items(table, [restaurant("Busy"), review("Busy", "1" * 40, "2021-01-01T00:00:00")])
    assert json.loads(cli("get", "Busy", "--json", env=stack_env).stdout)["source"] == "db"
    assert json.loads(cli("get", "Busy", "--json", env=stack_env).stdout)["source"] == "cache"
    added = cli("review", "add", "Busy", "--user", "amy", "--rating", "2", "--text", "meh", env=stack_env)
    assert added.returncode == 0, added.stderr
    body = json.loads(cli("get", "Busy", "--json", env=stack_env).stdout)
    assert body["source"] == "db"
    assert body["reviews"][0]["username"] == "amy"
    assert body["restaurant"]["two_stars"] == 1
    again = cli("review", "add", "Busy", "--user", "amy", "--rating", "2", "--text", "meh", env=stack_env)
    assert again.returncode == 1 and "already reviewed" in again.stderr
    missing = cli("review", "add", "Nope", "--user", "amy", "--rating", "2", "--text", "x", env=stack_env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad = cli("review", "add", "Busy", "--user", "bo", "--rating", "9", "--text", "x", env=stack_env)
    assert bad.returncode == 2


def test_invalidate_glob_lookalike_removes_only_its_own_key(cli, stack_env, table, live_settings):
    names = ["Star*", "Star", "Starbucks", "Star1", "S*"]
    put_items(table, [restaurant(n) for n in names])
    engine = service.engine(live_settings)
    for name in names:
        engine.fetch(name)
    result = cli("invalidate", "Star*", env=stack_env)
    assert result.returncode == 0, result.stderr
    assert engine.peek("Star*") is NO_VALUE
    assert all(engine.peek(n) is not NO_VALUE for n in names if n != "Star*")


def test_invalidate_stale_and_all(cli, stack_env, table, live_settings):
    put_items(table, [restaurant("Keep"), restaurant("Change")])
    engine = service.engine(live_settings)
    for name in ("Keep", "Change", "Later"):
        engine.fetch(name)
    # The source changes behind the cache's back: a new version, and a new restaurant.
    table.client.update_item(TableName=table.table_name, Key={"PK": {"S": "REST#Change"}, "SK": {"S": "REST#Change"}},
                             UpdateExpression="SET version = :v", ExpressionAttributeValues={":v": {"N": "7"}})
    put_items(table, [restaurant("Later")])
    stale = json.loads(cli("invalidate", "--stale", "--json", env=stack_env).stdout)
    assert sorted(stale["stale"]) == ["Change", "Later"] and stale["removed"] == 2
    assert stale["checked"] == 3 and stale["wrapped"] is True
    assert engine.peek("Keep") is not NO_VALUE
    every = json.loads(cli("invalidate", "--all", "--json", env=stack_env).stdout)
    assert every["removed"] == 1
    assert cli("invalidate", env=stack_env).returncode == 2


def test_warm_through_a_real_worker_then_get_hits(cli, worker, stack_env, table):
    put_items(table, [restaurant(n) for n in "ABC"] + [review("A", "a" * 40)])
    warmed = cli("warm", "A", "B", "C", "--wait", "--json", env=stack_env)
    assert warmed.returncode == 0, warmed.stderr
    assert sorted(json.loads(warmed.stdout)["warmed"]) == ["A", "B", "C"]
    for name in "ABC":
        assert json.loads(cli("get", name, "--json", env=stack_env).stdout)["source"] == "cache"


def test_warm_top_k_uses_read_counts(cli, worker, stack_env, table, live_settings):
    put_items(table, [restaurant(n) for n in ("Hot", "Warm", "Cold")])
    engine = service.engine(live_settings)
    for name, reads in (("Hot", 5), ("Warm", 3), ("Cold", 1)):
        for _ in range(reads):
            engine.fetch(name)
    engine.flush()
    cli("invalidate", "--all", env=stack_env)
    warmed = cli("warm", "--top", "2", "--wait", "--json", env=stack_env)
    assert sorted(json.loads(warmed.stdout)["warmed"]) == ["Hot", "Warm"]
    assert engine.peek("Cold") is NO_VALUE


def _beat_sends(client, queue: str) -> list[float]:
    sent = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        # Beat sets expires = send time + 0.9 * interval, which dates each dispatch.
        sent.append(datetime.fromisoformat(message["headers"]["expires"]).timestamp())
    return sorted(sent)


def test_two_beats_dispatch_each_period_once(celery_proc, stack_env):
    env = {**stack_env, "WARM_HOT_SCHEDULE": "2", "INVALIDATE_STALE_SCHEDULE": "off", "BENCHMARK_SCHEDULE": "off"}
    beats = [celery_proc(["beat", "--loglevel=INFO"], env, name=f"beat{i}") for i in range(2)]
    for beat in beats:
        beat.wait_for("beat: Starting", timeout=30)
    time.sleep(13)
    for beat in beats:
        beat.stop()
    client = redis.Redis.from_url(stack_env["REDIS_URL"])
    sends = _beat_sends(client, "warm")
    assert 4 <= len(sends) <= 8, sends  # ~13 s of a 2 s schedule, minus start-up
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert min(gaps) > 1.0, gaps  # never two dispatches of one period
    assert sum("Acquired lock" in b.log() for b in beats) >= 1

"""Issue 12: writes made behind cachewarm's back reach the cache through the table's change feed.

Real redis-server and dynalite (through the project's launcher, which serves the
Streams API); the lagging index is played by the fault proxy.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time

import pytest
import redis
from boto3.dynamodb.types import TypeSerializer

from cachewarm import service
from cachewarm.cache import NO_VALUE, CacheAside
from cachewarm.change_capture import handle_records
from cachewarm.clients import cache_redis, dynamodb_client, streams_client
from cachewarm.repository import RestaurantRepository
from cachewarm.settings import Settings
from cachewarm.stream_poller import StreamFollower
from devstack.dynamo_proxy import DynamoProxy
from tests.support.cli import cli_command, recording_env
from tests.support.items import put_items, restaurant, review
from tests.support.redis_proc import RedisProc
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
serialize = TypeSerializer().serialize


def item(attributes: dict) -> dict:
    return {key: serialize(value) for key, value in attributes.items()}


def newest_review_id(engine: CacheAside, name: str):
    entry = engine.peek(name)
    if entry is NO_VALUE or entry.summary is None:
        return entry
    return entry.summary.reviews[0]["id"]


def review_record(name: str, user: str, sequence: str) -> dict:
    """A KEYS_ONLY stream record of a review write, as the Lambda receives it."""
    return {"eventName": "INSERT", "eventSource": "aws:dynamodb",
            "dynamodb": {"Keys": {"PK": {"S": f"USER#{user}"}, "SK": {"S": f"REST#{name}"}},
                         "SequenceNumber": sequence, "ApproximateCreationDateTime": time.time(),
                         "StreamViewType": "KEYS_ONLY"}}


@pytest.mark.engine_matrix
@pytest.mark.topology_matrix
@pytest.mark.parametrize("hold_off_ms", [1500, 0])
def test_a_lagging_index_leaves_no_stale_value_past_the_hold_off(stack_env, table, dynalite, hold_off_ms):
    """The index answers with the pre-write snapshot for a while after the write.

    With the hold-off, reads in that window are served but never stored, and the
    first fill after it has the new review. Without it (0, the control), the stale
    answer is cached right after the invalidation: the test can fail.
    """
    name = "Laggy"
    put_items(table, [restaurant(name), review(name, "1" * 8, "2020-01-01T00:00:00")])
    with DynamoProxy(dynalite.url) as proxy:
        settings = dataclasses.replace(
            Settings.from_env({**stack_env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url}), change_hold_off_ms=hold_off_ms)
        engine = CacheAside(cache_redis(settings),
                            RestaurantRepository(dynamodb_client(settings), settings.table_name), settings)
        assert engine.fetch(name).cache == "miss"  # cached; the proxy keeps this Query's answer
        proxy.faults.lagging_index = True  # from now on GSI1 lags behind the table

        # The application writes a newer review straight to the table; the feed invalidates.
        newer = review(name, "2" * 8, "2024-06-01T00:00:00", user="direct")
        table.client.put_item(TableName=table.table_name, Item=item(newer))
        invalidated_at = time.monotonic()
        outcome = handle_records([review_record(name, "direct", "1")], engine, hold_off_ms=hold_off_ms)
        assert outcome.names == [name] and outcome.removed == 1

        # Readers keep coming while the index lags; it catches up before the hold-off ends.
        lag_seconds = 1.0 if hold_off_ms else 0.5
        cached_after_hold: set = set()
        while time.monotonic() - invalidated_at < 2.5:
            if time.monotonic() - invalidated_at >= lag_seconds:
                proxy.faults.lagging_index = False
            engine.fetch(name)
            if time.monotonic() - invalidated_at > hold_off_ms / 1000.0:
                cached_after_hold.add(newest_review_id(engine, name))
            time.sleep(0.02)
        assert proxy.lagged_queries > 0, "the index never lagged: the test proved nothing"
        if hold_off_ms:
            assert cached_after_hold <= {NO_VALUE, "2" * 8}, "a stale summary outlived the hold-off"
            assert newest_review_id(engine, name) == "2" * 8
        else:
            assert "1" * 8 in cached_after_hold, "without a hold-off the lagging read is cached"


def test_records_that_arrive_while_redis_is_frozen_are_all_invalidated_after(stack_env, table, tmp_path):
    """Redis hangs while the application writes: the follower retries, nothing is lost."""
    cache_redis = RedisProc(tmp_path / "cache", []).start()
    try:
        settings = dataclasses.replace(Settings.from_env(stack_env), cache_redis_url=cache_redis.url,
                                       redis_timeout=0.3, cache_backoff=0.0)
        engine = CacheAside(redis.Redis.from_url(cache_redis.url, socket_timeout=0.3, socket_connect_timeout=0.3),
                            RestaurantRepository(dynamodb_client(settings), settings.table_name), settings)
        names = ["Frozen A", "Frozen B", "Frozen C"]
        put_items(table, [restaurant(n) for n in names] + [review(n, n[-1] * 8, user="old") for n in names])
        for name in names:
            engine.fetch(name)
        outcomes = []

        def handle(records):
            outcome = handle_records(records, engine, hold_off_ms=0)
            outcomes.append(outcome)
            return outcome.failed

        follower = StreamFollower(streams_client(settings), dynamodb_client(settings), settings.table_name,
                                  handle, poll_seconds=0.05)
        stop = threading.Event()
        thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
        thread.start()
        try:
            wait_until(lambda: follower.handled >= 6, 20, "the follower to read the initial writes")
            assert all(engine.peek(n) is NO_VALUE for n in names)
            for name in names:
                engine.fetch(name)  # cached again, before the outage

            cache_redis.pause()
            client = table.client
            client.put_item(TableName=table.table_name, Item=item(review("Frozen A", "new-a", user="app")))
            client.update_item(TableName=table.table_name, Key=item({"PK": "REST#Frozen B", "SK": "REST#Frozen B"}),
                               UpdateExpression="SET cuisine = :c", ExpressionAttributeValues={":c": {"S": "Lao"}})
            client.delete_item(TableName=table.table_name, Key=item({"PK": "USER#old", "SK": "REST#Frozen C"}))
            wait_until(lambda: any(o.failed for o in outcomes), 20, "a failed delivery while Redis is frozen")
            time.sleep(1.0)  # more failed attempts pile up; none may be dropped
        finally:
            cache_redis.resume()
        try:
            # A pipeline that timed out may still run once Redis thaws (its commands sat in the socket):
            # wait for the follower's own successful redelivery too, not only for the keys to go.
            wait_until(lambda: follower.handled >= 9, 20, "the frozen records delivered once Redis is back")
            wait_until(lambda: all(engine.peek(n) is NO_VALUE for n in names), 20,
                       "every affected summary invalidated once Redis is back")
        finally:
            stop.set()
            thread.join(10)
        failed = [o for o in outcomes if o.failed]
        assert failed and all(o.error for o in failed)
        assert follower.handled == 9, "every record handled exactly once after its successful delivery"
    finally:
        cache_redis.stop()


@pytest.mark.engine_matrix
@pytest.mark.topology_matrix
def test_feed_follow_shows_direct_writes_in_get(cli, stack_env, table):
    """``cachewarm feed follow`` (the Procfile's process) makes direct writes show in ``cachewarm get``."""
    name = "Direct Writes"
    put_items(table, [restaurant(name), review(name, "a" * 8, "2020-01-01T00:00:00", user="old")])
    follower = subprocess.Popen(cli_command("feed", "follow"), env=recording_env(stack_env),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        engine = service.engine()
        assert engine.fetch(name).found
        client = table.client
        seen: dict[str, float] = {}

        def visible(check) -> bool:
            # What `cachewarm get` would show: during the hold-off it comes from DynamoDB, uncached.
            return check(engine.fetch(name))

        t0 = time.monotonic()
        client.put_item(TableName=table.table_name, Item=item(review(name, "b" * 8, "2024-01-01T00:00:00", user="app")))
        wait_until(lambda: visible(lambda r: r.summary.reviews[0]["id"] == "b" * 8), 15,
                   "a review put with boto3 in get")
        seen["review put"] = time.monotonic() - t0

        t0 = time.monotonic()
        client.update_item(TableName=table.table_name, Key=item({"PK": f"REST#{name}", "SK": f"REST#{name}"}),
                           UpdateExpression="SET cuisine = :c", ExpressionAttributeValues={":c": {"S": "Lao"}})
        wait_until(lambda: visible(lambda r: r.summary.restaurant["cuisine"] == "Lao"), 15,
                   "a restaurant attribute update in get")
        seen["restaurant update"] = time.monotonic() - t0

        t0 = time.monotonic()
        client.delete_item(TableName=table.table_name, Key=item({"PK": "USER#app", "SK": f"REST#{name}"}))
        wait_until(lambda: visible(lambda r: r.summary.reviews[0]["id"] == "a" * 8), 15,
                   "the review's delete in get")
        seen["review delete"] = time.monotonic() - t0
        print("seconds from the write to get showing it:", {k: round(v, 3) for k, v in seen.items()})

        done = cli("get", name, "--json", env=stack_env)
        assert done.returncode == 0 and '"cuisine": "Lao"' in done.stdout
    finally:
        follower.terminate()
        output, _ = follower.communicate(timeout=10)
    assert follower.returncode == 0, output
    assert "names invalidated" in output

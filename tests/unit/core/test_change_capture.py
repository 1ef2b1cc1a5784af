"""The change feed's handler: AWS's record shapes in, one invalidation round trip out, failures reported."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import fakeredis
import pytest
import redis

from cachewarm import change_capture
from cachewarm.cache import NO_VALUE, CacheAside
from cachewarm.change_capture import credentials, handle_records, lambda_handler, restaurant_of, with_auth_token
from cachewarm.model import Summary
from cachewarm.scripts import INVALIDATE
from cachewarm.settings import Settings

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Restaurants/stream/2026-12-02T05:00:00.000"

# The shape of a DynamoDB Streams record in a Lambda event, as AWS documents it ("Using AWS Lambda
# with Amazon DynamoDB", example DynamoDB record event; ApproximateCreationDateTime is in epoch
# seconds, as in the Streams API reference's StreamRecord), with this table's keys, KEYS_ONLY.
AWS_RECORD = {
    "eventID": "c4ca4238a0b923820dcc509a6f75849b",
    "eventName": "INSERT",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1764651600,
        "Keys": {"PK": {"S": "REST#Thai Spot"}, "SK": {"S": "REST#Thai Spot"}},
        "SequenceNumber": "4421584500000000017450439091",
        "SizeBytes": 26,
        "StreamViewType": "KEYS_ONLY",
    },
    "eventSourceARN": STREAM_ARN,
}


def record(pk: str, sk: str, sequence: str, *, event: str = "INSERT", created: float = 1764651600) -> dict:
    out = copy.deepcopy(AWS_RECORD)
    out["eventName"] = event
    out["dynamodb"].update(Keys={"PK": {"S": pk}, "SK": {"S": sk}}, SequenceNumber=sequence,
                           ApproximateCreationDateTime=created)
    return out


def unreachable() -> redis.Redis:
    """A client of a port nobody listens on, without redis-py's default retries (fast refusals)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))


class NoRepo:
    def get_summary(self, name):  # the handler never reads DynamoDB
        raise AssertionError("the change feed must not read the table")


@pytest.fixture
def engine(fake_server) -> CacheAside:
    return CacheAside(fakeredis.FakeRedis(server=fake_server), NoRepo(), Settings())


def cache(engine: CacheAside, *names: str) -> None:
    engine.store_many((name, Summary({"name": name, "version": 0}, []), 0.001) for name in names)


@pytest.mark.parametrize(("keys", "name"), [
    ({"PK": {"S": "REST#Thai Spot"}, "SK": {"S": "REST#Thai Spot"}}, "Thai Spot"),  # restaurant
    ({"PK": {"S": "USER#amy"}, "SK": {"S": "REST#Thai Spot"}}, "Thai Spot"),  # review
    ({"PK": {"S": "USER#amy"}, "SK": {"S": "REST#Café: 10% off*"}}, "Café: 10% off*"),  # any name
    ({"PK": {"S": "BENCH#run"}, "SK": {"S": "RUN#1"}}, None),  # a benchmark run
    ({"PK": {"S": "BENCH#run"}, "SK": {"S": "REST#x"}}, None),  # foreign item that looks half right
    ({"PK": {"S": "REST#a"}, "SK": {"S": "REST#b"}}, None),
    ({"PK": {"S": "USER#amy"}, "SK": {"S": "REST#"}}, None),
    ({"PK": {"N": "1"}, "SK": {"S": "REST#x"}}, None),
    ({}, None),
])
def test_keys_name_the_restaurant_of_restaurant_and_review_items(keys, name):
    assert restaurant_of(keys) == name


def test_a_batch_is_deduped_and_invalidated_in_one_round_trip(engine, monkeypatch):
    cache(engine, "Thai Spot", "Noodle Bar", "Untouched")
    records = [
        record("REST#Thai Spot", "REST#Thai Spot", "100", event="MODIFY"),
        record("USER#amy", "REST#Thai Spot", "101"),
        record("USER#bob", "REST#Noodle Bar", "102", event="REMOVE"),
        record("BENCH#run", "RUN#7", "103"),
    ]
    engine.redis.script_load(INVALIDATE)  # a server's first use loads the script: one more round trip, once
    pipelines = []
    real = engine.redis.pipeline

    def counting_pipeline(*args, **kwargs):
        pipelines.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.redis, "pipeline", counting_pipeline)
    outcome = handle_records(records, engine, hold_off_ms=2000, clock=lambda: 1764651600.25)
    assert len(pipelines) == 1, "one round trip per batch"
    assert outcome.names == ["Thai Spot", "Noodle Bar"]
    assert (outcome.records, outcome.ignored, outcome.removed, outcome.failed) == (4, 1, 2, [])
    assert outcome.lag_ms == [250.0, 250.0, 250.0]
    assert engine.peek("Thai Spot") is NO_VALUE and engine.peek("Noodle Bar") is NO_VALUE
    assert engine.peek("Untouched") is not NO_VALUE
    # The hold-off is on for the invalidated names only, with its TTL.
    assert 0 < engine.redis.pttl(engine.keys.hold("Thai Spot")) <= 2000
    assert not engine.redis.exists(engine.keys.hold("Untouched"))
    counters = engine.metrics.window(120)
    assert (counters["feed_records"], counters["feed_ignored"], counters["feed_invalidated"]) == (4, 1, 2)
    lag_key = engine.keys.stats("feed:lag")
    assert engine.redis.lrange(lag_key, 0, -1) == [b"250.0"] * 3 and engine.redis.ttl(lag_key) > 0


def test_boto3_records_with_datetimes_work_too(engine):
    cache(engine, "Thai Spot")
    boto3_record = record("USER#amy", "REST#Thai Spot", "100")
    boto3_record["dynamodb"]["ApproximateCreationDateTime"] = datetime.fromtimestamp(1764651600.5, UTC)
    outcome = handle_records([boto3_record], engine, hold_off_ms=0, clock=lambda: 1764651601.0)
    assert outcome.lag_ms == [500.0] and engine.peek("Thai Spot") is NO_VALUE
    assert not engine.redis.exists(engine.keys.hold("Thai Spot")), "0 turns the hold-off off"


def test_only_ignored_records_touch_no_summary(engine):
    cache(engine, "Thai Spot")
    outcome = handle_records([record("BENCH#run", "RUN#1", "1")], engine, hold_off_ms=2000)
    assert (outcome.names, outcome.failed, outcome.ignored) == ([], [], 1)
    assert engine.peek("Thai Spot") is not NO_VALUE


def test_unreachable_redis_reports_every_record_that_named_a_restaurant():
    engine = CacheAside(unreachable(), NoRepo(), Settings())
    records = [record("USER#amy", "REST#A", "7"), record("BENCH#run", "RUN#1", "8"), record("REST#B", "REST#B", "9")]
    outcome = handle_records(records, engine, hold_off_ms=2000)
    assert outcome.failed == ["7", "9"]
    assert "ConnectionError" in (outcome.error or "")


def test_lambda_handler_answers_with_batch_item_failures(monkeypatch, fake_server):
    engine = CacheAside(fakeredis.FakeRedis(server=fake_server), NoRepo(), Settings())
    cache(engine, "Thai Spot")
    monkeypatch.setattr(change_capture, "_lambda_engine", lambda pid: (engine, Settings()))
    event = {"Records": [record("USER#amy", "REST#Thai Spot", "100")]}
    assert lambda_handler(event, None) == {"batchItemFailures": []}
    assert engine.peek("Thai Spot") is NO_VALUE

    down = CacheAside(unreachable(), NoRepo(), Settings())
    monkeypatch.setattr(change_capture, "_lambda_engine", lambda pid: (down, Settings()))
    assert lambda_handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "100"}]}


def test_lambda_reads_the_auth_token_from_secrets_manager_once(monkeypatch):
    calls = []
    monkeypatch.setenv("REDIS_URL", "rediss://cache.example:6379/0")
    monkeypatch.setenv("REDIS_AUTH_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:redis")
    monkeypatch.setattr(change_capture, "_secret_token", lambda arn: calls.append(arn) or "t/k+n")
    change_capture._lambda_engine.cache_clear()
    try:
        engine, settings = change_capture._lambda_engine(1)
        again, _ = change_capture._lambda_engine(1)
    finally:
        change_capture._lambda_engine.cache_clear()
    assert settings.redis_url == "rediss://:t%2Fk%2Bn@cache.example:6379/0"
    assert again is engine and len(calls) == 1


@pytest.mark.parametrize(("url", "expected"), [
    ("rediss://host:6379/0", "rediss://:tok@host:6379/0"),
    ("rediss://:other@host:6379/0", "rediss://:other@host:6379/0"),
    ("unix:///tmp/r.sock", "unix:///tmp/r.sock"),
])
def test_auth_token_is_spliced_like_the_image_entrypoint(url, expected):
    assert with_auth_token(url, "tok") == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("rediss://host:6379/0?ssl_cert_reqs=required", "rediss://cache:pw@host:6379/0?ssl_cert_reqs=required"),
    ("rediss://broker:other@host:6379/0", "rediss://broker:other@host:6379/0"),
    ("unix:///tmp/r.sock", "unix:///tmp/r.sock"),
])
def test_an_acl_user_is_spliced_with_its_password(url, expected):
    assert with_auth_token(url, "pw", "cache") == expected


@pytest.mark.parametrize(("secret", "expected"), [
    ('{"username": "cache", "password": "p4ss"}', ("cache", "p4ss")),
    ('{"password": "p4ss"}', (None, "p4ss")),
    ('{"username": "", "password": "p4ss"}', (None, "p4ss")),
    ("t0ken", (None, "t0ken")),
    ('"quoted"', (None, '"quoted"')),
    ('{"user": "x"}', (None, '{"user": "x"}')),
])
def test_credentials_are_json_of_an_acl_user_or_a_bare_token(secret, expected):
    assert credentials(secret) == expected


def test_lambda_connects_as_the_acl_user_of_its_secret(monkeypatch):
    """Production: the secret is the RBAC cache user's JSON; both URLs get user and password, escaped."""
    monkeypatch.setenv("REDIS_URL", "rediss://cache.example:6379/0?ssl_cert_reqs=required")
    monkeypatch.setenv("CACHE_REDIS_URL", "rediss://cache.example:6379/0")
    monkeypatch.setenv("REDIS_AUTH_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:cache")
    monkeypatch.setattr(change_capture, "_secret_token", lambda arn: '{"username": "cache", "password": "p/w"}')
    change_capture._lambda_engine.cache_clear()
    try:
        _, settings = change_capture._lambda_engine(1)
    finally:
        change_capture._lambda_engine.cache_clear()
    assert settings.redis_url == "rediss://cache:p%2Fw@cache.example:6379/0?ssl_cert_reqs=required"
    assert settings.cache_redis_url == "rediss://cache:p%2Fw@cache.example:6379/0"
    client = redis.Redis.from_url(settings.cache_url)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("cache", "p/w")


def test_every_item_of_the_original_data_file_names_its_restaurant_by_its_keys_alone():
    """KEYS_ONLY is enough: each item of the original format maps to the restaurant it feeds."""
    import json

    from tests.support.items import seed_items_path

    path = seed_items_path()
    assert path.is_file(), f"the original data file is missing: {path} (set CACHEWARM_SEED_ITEMS)"
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(items) == 261
    for item in items:
        keys = {"PK": {"S": item["PK"]}, "SK": {"S": item["SK"]}}
        expected = item["name"] if item["PK"] == item["SK"] else item["restaurant"]
        assert restaurant_of(keys) == expected, item["PK"]

"""The dynalite launcher's DynamoDB Streams API (devstack/dynalite-streams.js, docs/local-streams.md).

A private dynalite serves the module; each test makes its own table. The clients
are plain boto3 ``dynamodb`` and ``dynamodbstreams`` clients pointed at the one port.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from cachewarm.schema import create_table_request
from devstack.localstack import Service, dynalite_command, free_port, port_open, start_dynalite
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

KEYS_ONLY = {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
STREAM_ARN = re.compile(r"^arn:aws:dynamodb:us-east-1:000000000000:table/(?P<table>[\w.-]+)/stream/"
                        r"(?P<label>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})$")


def _clients(url: str):
    settings = {"endpoint_url": url, "region_name": "us-east-1",
                "aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return boto3.client("dynamodb", **settings), boto3.client("dynamodbstreams", **settings)


def _create(dynamodb, stream: dict | None = KEYS_ONLY) -> str:
    """A new table (the project's schema) with or without a stream, once ACTIVE; returns its name."""
    name = f"Streams-{uuid.uuid4().hex[:10]}"
    request = dict(create_table_request(name))
    request.pop("StreamSpecification", None)
    if stream is not None:
        request["StreamSpecification"] = stream
    dynamodb.create_table(**request)
    wait_until(lambda: dynamodb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE", 10,
               f"table {name} to be ACTIVE")
    return name


def _key(pk: str, sk: str = "S") -> dict:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def _iterator(streams, arn: str, kind: str, sequence: str | None = None) -> str:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    extra = {"SequenceNumber": sequence} if sequence else {}
    return streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType=kind, **extra)["ShardIterator"]


def _records(streams, iterator: str) -> list[dict]:
    return streams.get_records(ShardIterator=iterator)["Records"]


def _raw(url: str, operation: str, body: bytes) -> tuple[int, dict]:
    """A Streams call without botocore: the status and the JSON exactly as sent."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDBStreams_20120810.{operation}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _summary(records: list[dict]) -> list[tuple[str, str]]:
    return [(r["eventName"], r["dynamodb"]["Keys"]["PK"]["S"]) for r in records]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Service]:
    service = start_dynalite(tmp_path_factory.mktemp("streams"), persist=False)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def clients(server):
    return _clients(server.url)


@pytest.fixture
def table(clients) -> Iterator[tuple[str, str]]:
    """A table with a KEYS_ONLY stream: (name, stream ARN)."""
    dynamodb, _ = clients
    name = _create(dynamodb)
    yield name, dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    dynamodb.delete_table(TableName=name)


def test_the_table_and_the_stream_describe_each_other(clients, table):
    dynamodb, streams = clients
    name, arn = table
    described = dynamodb.describe_table(TableName=name)["Table"]
    assert described["StreamSpecification"] == KEYS_ONLY
    match = STREAM_ARN.match(described["LatestStreamArn"])
    assert match and match["table"] == name and match["label"] == described["LatestStreamLabel"]

    listed = streams.list_streams(TableName=name)["Streams"]
    assert listed == [{"StreamArn": arn, "TableName": name, "StreamLabel": described["LatestStreamLabel"]}]
    assert arn in [s["StreamArn"] for s in streams.list_streams()["Streams"]]

    stream = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert (stream["StreamStatus"], stream["StreamViewType"], stream["TableName"]) == ("ENABLED", "KEYS_ONLY", name)
    assert stream["KeySchema"] == described["KeySchema"]
    [shard] = stream["Shards"]
    assert re.fullmatch(r"shardId-\d{20}-[0-9a-f]{8}", shard["ShardId"])
    assert re.fullmatch(r"\d{21}", shard["SequenceNumberRange"]["StartingSequenceNumber"])


def test_each_successful_write_is_recorded_in_order(server, clients, table):
    dynamodb, streams = clients
    name, arn = table
    dynamodb.put_item(TableName=name, Item={**_key("put"), "x": {"N": "1"}})
    dynamodb.update_item(TableName=name, Key=_key("put"), UpdateExpression="SET x = :x",
                         ExpressionAttributeValues={":x": {"N": "2"}})
    dynamodb.delete_item(TableName=name, Key=_key("put"))
    dynamodb.put_item(TableName=name, Item=_key("old"))
    dynamodb.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": {**_key("batch"), "y": {"S": "v"}}}},
                                                   {"DeleteRequest": {"Key": _key("old")}}]})
    records = _records(streams, _iterator(streams, arn, "TRIM_HORIZON"))

    assert _summary(records) == [("INSERT", "put"), ("MODIFY", "put"), ("REMOVE", "put"), ("INSERT", "old"),
                                 ("INSERT", "batch"), ("REMOVE", "old")]
    assert records[4]["dynamodb"]["Keys"] == _key("batch")  # keys only, never the other attributes
    sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert all(re.fullmatch(r"\d{21}", s) for s in sequences)
    assert [int(s) for s in sequences] == sorted({int(s) for s in sequences})  # strictly increasing
    assert len({r["eventID"] for r in records}) == len(records)
    for record in records:
        assert (record["eventVersion"], record["eventSource"], record["awsRegion"]) == ("1.1", "aws:dynamodb",
                                                                                       "us-east-1")
        assert record["dynamodb"]["StreamViewType"] == "KEYS_ONLY" and record["dynamodb"]["SizeBytes"] > 0
        assert abs(record["dynamodb"]["ApproximateCreationDateTime"].timestamp() - time.time()) < 10

    # On the wire the creation time is epoch seconds, a JSON number with milliseconds.
    status, raw = _raw(server.url, "GetRecords",
                       json.dumps({"ShardIterator": _iterator(streams, arn, "TRIM_HORIZON")}).encode())
    times = [r["dynamodb"]["ApproximateCreationDateTime"] for r in raw["Records"]]
    assert status == 200 and all(isinstance(t, int | float) and round(t, 3) == t for t in times)
    assert any(isinstance(t, float) for t in times)


def test_failed_writes_record_nothing(clients, table):
    dynamodb, streams = clients
    name, arn = table
    dynamodb.put_item(TableName=name, Item=_key("there"))
    latest = _iterator(streams, arn, "LATEST")
    with pytest.raises(ClientError) as failed:
        dynamodb.put_item(TableName=name, Item=_key("there"), ConditionExpression="attribute_not_exists(PK)")
    assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    with pytest.raises(ClientError):  # dynalite 4.0.0 has no transactions: UnknownOperationException
        dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": name, "Item": _key("tx")}}])
    with pytest.raises(ClientError):  # a ValidationException: the key is incomplete
        dynamodb.put_item(TableName=name, Item={"PK": {"S": "no sort key"}})
    assert _records(streams, latest) == []
    assert _summary(_records(streams, _iterator(streams, arn, "TRIM_HORIZON"))) == [("INSERT", "there")]


def test_latest_and_sequence_number_iterators(clients, table):
    dynamodb, streams = clients
    name, arn = table
    dynamodb.put_item(TableName=name, Item=_key("first"))
    latest = _iterator(streams, arn, "LATEST")
    dynamodb.put_item(TableName=name, Item=_key("second"))
    [first, second] = _records(streams, _iterator(streams, arn, "TRIM_HORIZON"))
    assert _summary(_records(streams, latest)) == [("INSERT", "second")]

    sequence = first["dynamodb"]["SequenceNumber"]
    after = _records(streams, _iterator(streams, arn, "AFTER_SEQUENCE_NUMBER", sequence))
    at = _records(streams, _iterator(streams, arn, "AT_SEQUENCE_NUMBER", sequence))
    assert after == [second] and at == [first, second]

    page = streams.get_records(ShardIterator=_iterator(streams, arn, "TRIM_HORIZON"), Limit=1)
    assert page["Records"] == [first]
    rest = streams.get_records(ShardIterator=page["NextShardIterator"])
    assert rest["Records"] == [second] and _records(streams, rest["NextShardIterator"]) == []


def test_a_table_without_a_stream_has_none(clients):
    dynamodb, streams = clients
    for spec in (None, {"StreamEnabled": False}):
        name = _create(dynamodb, spec)
        described = dynamodb.describe_table(TableName=name)["Table"]
        assert "LatestStreamArn" not in described and "StreamSpecification" not in described
        assert streams.list_streams(TableName=name)["Streams"] == []
        dynamodb.put_item(TableName=name, Item=_key("unseen"))
        assert name not in [s["TableName"] for s in streams.list_streams()["Streams"]]
        dynamodb.delete_table(TableName=name)


def test_update_table_turns_the_stream_on_and_delete_table_ends_it(clients):
    dynamodb, streams = clients
    name = _create(dynamodb, None)
    dynamodb.put_item(TableName=name, Item=_key("before"))
    updated = dynamodb.update_table(TableName=name, StreamSpecification=KEYS_ONLY)["TableDescription"]
    arn = updated["LatestStreamArn"]
    assert STREAM_ARN.match(arn) and updated["StreamSpecification"] == KEYS_ONLY
    with pytest.raises(ClientError) as twice:
        dynamodb.update_table(TableName=name, StreamSpecification=KEYS_ONLY)
    assert twice.value.response["Error"]["Code"] == "ValidationException"
    dynamodb.put_item(TableName=name, Item=_key("after"))
    assert _summary(_records(streams, _iterator(streams, arn, "TRIM_HORIZON"))) == [("INSERT", "after")]

    dynamodb.delete_table(TableName=name)
    with pytest.raises(streams.exceptions.ResourceNotFoundException):
        streams.describe_stream(StreamArn=arn)
    assert streams.list_streams(TableName=name)["Streams"] == []


def test_errors_have_aws_shapes(clients, table):
    _, streams = clients
    _, arn = table
    unknown = arn.rsplit("/", 1)[0] + "/2000-01-01T00:00:00.000"
    with pytest.raises(streams.exceptions.ResourceNotFoundException):
        streams.describe_stream(StreamArn=unknown)
    with pytest.raises(streams.exceptions.ResourceNotFoundException):
        streams.get_shard_iterator(StreamArn=unknown, ShardId="shardId-00000000000000000000-00000000",
                                   ShardIteratorType="TRIM_HORIZON")
    with pytest.raises(streams.exceptions.ResourceNotFoundException):
        streams.get_shard_iterator(StreamArn=arn, ShardId="shardId-00000000000000000000-00000000",
                                   ShardIteratorType="TRIM_HORIZON")
    with pytest.raises(ClientError) as bad:
        streams.get_records(ShardIterator="not-an-iterator")
    assert bad.value.response["Error"]["Code"] == "ValidationException"
    assert bad.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_errors_on_the_wire(server):
    arn = "arn:aws:dynamodb:us-east-1:000000000000:table/x/stream/2000-01-01T00:00:00.000"
    assert _raw(server.url, "DescribeStream", json.dumps({"StreamArn": arn}).encode()) == (
        400, {"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
              "message": f"Requested resource not found: Stream: {arn} not found"})
    status, body = _raw(server.url, "DescribeStream", b"{not json")
    assert (status, body["__type"]) == (400, "com.amazon.coral.service#SerializationException")
    assert _raw(server.url, "Nonsense", b"{}")[1]["__type"] == "com.amazon.coral.service#UnknownOperationException"


def test_a_client_gone_mid_streams_request_leaves_the_launcher_up(server, clients):
    # As for DynamoDB requests (architect/dynalite#183): the body is read here, not by dynalite.
    sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
                 b"X-Amz-Target: DynamoDBStreams_20120810.ListStreams\r\nContent-Length: 1000\r\n\r\n{\"a\":")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    sock.close()
    wait_until(lambda: "went away" in server.log_path.read_text(), 5, "the launcher logging the reset")
    assert server.process.poll() is None
    assert "Streams" in clients[1].list_streams()


def test_a_persisted_table_gets_a_new_empty_stream_after_a_restart(tmp_path):
    first = start_dynalite(tmp_path, persist=True)
    try:
        dynamodb, _ = _clients(first.url)
        name = _create(dynamodb)
        old_arn = dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
        dynamodb.put_item(TableName=name, Item=_key("before"))
    finally:
        first.stop()
    second = start_dynalite(tmp_path, persist=True)
    try:
        dynamodb, streams = _clients(second.url)
        arn = dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
        assert arn != old_arn and [s["StreamArn"] for s in streams.list_streams()["Streams"]] == [arn]
        dynamodb.put_item(TableName=name, Item=_key("after"))
        assert _summary(_records(streams, _iterator(streams, arn, "TRIM_HORIZON"))) == [("INSERT", "after")]
    finally:
        second.stop()


def test_only_the_newest_records_are_kept(tmp_path):
    # start_dynalite has no way to pass launcher options: this launcher keeps 3 records per stream.
    port = free_port()
    log_path = tmp_path / "dynalite.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*dynalite_command(), "--port", str(port), "--host", "127.0.0.1",
                                    "--stream-records", "3"], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    launcher = Service("dynalite-3-records", f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until(lambda: process.poll() is not None or port_open("127.0.0.1", port), 20, "the launcher's port")
        assert process.poll() is None, log_path.read_text()
        dynamodb, streams = _clients(launcher.url)
        name = _create(dynamodb)
        arn = dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
        horizon = _iterator(streams, arn, "TRIM_HORIZON")
        for n in range(5):
            dynamodb.put_item(TableName=name, Item=_key(f"item{n}"))

        kept = _records(streams, _iterator(streams, arn, "TRIM_HORIZON"))
        assert _summary(kept) == [("INSERT", "item2"), ("INSERT", "item3"), ("INSERT", "item4")]
        with pytest.raises(streams.exceptions.TrimmedDataAccessException):
            _records(streams, horizon)  # taken before the writes: its first records are gone
        first_kept = int(kept[0]["dynamodb"]["SequenceNumber"])
        with pytest.raises(streams.exceptions.TrimmedDataAccessException):
            _iterator(streams, arn, "AT_SEQUENCE_NUMBER", f"{first_kept - 1:021d}")
        after_trimmed = _iterator(streams, arn, "AFTER_SEQUENCE_NUMBER", f"{first_kept - 1:021d}")
        assert _records(streams, after_trimmed) == kept
    finally:
        launcher.stop()

"""Batch writer retries, dedupe, isolation of invalid items, and whole loads on moto (+ fakeredis)."""

from __future__ import annotations

import json

import boto3
import fakeredis
import pytest
import redis
from botocore.exceptions import ClientError

from cachewarm.backoff import Backoff
from cachewarm.cache import NO_VALUE, CacheAside
from cachewarm.errors import TableNotFoundError
from cachewarm.model import Summary
from cachewarm.repository import RestaurantRepository
from cachewarm.settings import Settings
from loaders import block_writer, pipeline
from loaders.errors import EmptyInputError, LoadFailed, StillUnprocessed
from loaders.invalidate import Invalidator
from loaders.report import read_rejects
from loaders.validate import Item, parse_line
from loaders.writer import BATCH_SIZE, BatchWriter, dedupe

TABLE = "Restaurants"


def item(pk: str, sk: str = "S", line: int = 1, **attrs) -> Item:
    parsed = parse_line(json.dumps({"PK": pk, "SK": sk, **attrs}).encode(), line)
    assert isinstance(parsed, Item)
    return parsed


def client_error(code: str, message: str = "boom", op: str = "BatchWriteItem") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, op)


class FakeClient:
    """Answers BatchWriteItem from a script of responses (callables or exceptions)."""

    def __init__(self, script=(), bad_keys=()):
        self.script = list(script)
        self.bad_keys = set(bad_keys)
        self.batches: list[list[str]] = []
        self.puts: list[str] = []

    def batch_write_item(self, RequestItems):
        requests = RequestItems[TABLE]
        self.batches.append([r["PutRequest"]["Item"]["PK"]["S"] for r in requests])
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        unprocessed = step(requests) if step else []
        return {"UnprocessedItems": {TABLE: unprocessed} if unprocessed else {}}

    def put_item(self, TableName, Item):
        pk = Item["PK"]["S"]
        self.puts.append(pk)
        if pk in self.bad_keys:
            raise client_error("ValidationException", f"bad item {pk}", "PutItem")
        return {}


class Recorder:
    def __init__(self):
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def writer(client, **kwargs) -> tuple[BatchWriter, Recorder]:
    sleep = Recorder()
    return BatchWriter(client, TABLE, sleep=sleep, rand=lambda: 1.0, **kwargs), sleep


def test_dedupe_keeps_the_last_line_of_each_key():
    items = [item("a", line=1, v=1), item("b", line=2), item("a", line=3, v=3), item("a", line=4, v=4)]
    unique, superseded = dedupe(items)
    assert [(i.key[0], i.line) for i in unique] == [("b", 2), ("a", 4)]
    assert unique[1].av["v"] == {"N": "4"}
    assert {key: [i.line for i in lost] for key, lost in superseded.items()} == {("a", "S"): [1, 3]}
    assert superseded[("a", "S")][1].av["v"] == {"N": "3"}


def test_a_batch_with_duplicate_keys_is_refused_before_dynamodb_sees_it():
    client = FakeClient()
    with pytest.raises(ValueError, match="same key"):
        writer(client)[0].write([item("a"), item("a")])
    assert client.batches == []


def test_unprocessed_items_are_retried_with_capped_exponential_backoff():
    keep = [10, 3]  # DynamoDB hands back 10, then 3, then nothing
    script = [lambda reqs, n=n: reqs[:n] for n in keep]
    client = FakeClient(script)
    w, sleep = writer(client, backoff=Backoff(retries=5, base=0.05, cap=0.15))
    outcome = w.write([item(f"k{i}") for i in range(BATCH_SIZE)])
    assert outcome.written == BATCH_SIZE and outcome.retries == 2 and outcome.rejects == []
    assert [len(b) for b in client.batches] == [25, 10, 3]
    assert sleep.delays == [0.1, 0.15]  # base * 2**attempt, capped (rand=1.0: the top of the jitter range)


def test_jitter_spreads_waits_below_the_cap():
    delays = [Backoff(base=0.05, cap=5.0).delay(3, lambda r=r: r) for r in (0.0, 0.25, 0.999)]
    assert delays == [0.0, 0.1, pytest.approx(0.3996)]


def test_retries_are_bounded_and_the_failure_is_loud():
    client = FakeClient([lambda reqs: reqs[:1]] * 100)
    w, sleep = writer(client, backoff=Backoff(retries=4, base=0.01, cap=0.02))
    with pytest.raises(StillUnprocessed, match="1 items were still not written after 4 retries"):
        w.write([item("a"), item("b")])
    assert len(sleep.delays) == 4 and max(sleep.delays) <= 0.02
    assert StillUnprocessed.__mro__[1].__name__ == "RetryableError"  # a Celery task may retry it


def test_throttling_after_botocore_retries_gets_more_rounds():
    client = FakeClient([client_error("ProvisionedThroughputExceededException"), None])
    outcome = writer(client)[0].write([item("a")])
    assert outcome.written == 1 and outcome.retries == 1 and len(client.batches) == 2


def test_an_invalid_item_is_isolated_and_its_neighbours_are_written():
    client = FakeClient([client_error("ValidationException", "one item is bad")], bad_keys={"k7"})
    batch = [item(f"k{i}", line=i + 1) for i in range(BATCH_SIZE)]
    outcome = writer(client)[0].write(batch)
    assert outcome.written == BATCH_SIZE - 1
    assert [(r.line, r.reason) for r in outcome.rejects] == [(8, "DynamoDB refused the item: bad item k7")]
    assert outcome.rejects[0].text == batch[7].raw.decode()
    assert len(client.puts) == BATCH_SIZE


def test_a_missing_table_is_a_permanent_error():
    client = FakeClient([client_error("ResourceNotFoundException")])
    with pytest.raises(TableNotFoundError, match="cachewarm table create"):
        writer(client)[0].write([item("a")])


# -- the invalidator ----------------------------------------------------------------------------


class FlakyEngine:
    """Accepts ``fail_after`` blocks of invalidations, then behaves like a cache that went down."""

    def __init__(self, fail_after: int):
        self.calls: list[list[str]] = []
        self.fail_after = fail_after

    def invalidate_many(self, names):
        if len(self.calls) >= self.fail_after:
            raise redis.exceptions.ConnectionError("cache down")
        self.calls.append(list(names))
        return len(names)


def test_invalidator_counts_what_it_could_not_do_and_stops_trying():
    engine = FlakyEngine(fail_after=1)
    invalidate = Invalidator(lambda: engine)
    assert invalidate(["a", "b"]) == (2, 0)  # one round trip per block
    assert invalidate(["c", "d"]) == (0, 2)
    assert invalidate(["e"]) == (0, 1)  # no more tries once the cache failed
    assert engine.calls == [["a", "b"]]
    assert "cache down" in invalidate.error


# -- whole loads on moto ---------------------------------------------------------------------------


@pytest.fixture
def fake_cache(monkeypatch):
    """Route the loader's write-around through a CacheAside on fakeredis."""
    server = fakeredis.FakeServer()
    engines = []

    def factory(settings):
        def build():
            repo = RestaurantRepository(boto3.client("dynamodb", region_name="us-east-1"), settings.table_name)
            engine = CacheAside(fakeredis.FakeRedis(server=server), repo, settings)
            engines.append(engine)
            return engine
        return build

    monkeypatch.setattr(block_writer, "settings_engine_factory", factory)
    return factory


def table_items() -> dict[tuple[str, str], dict]:
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    client = boto3.client("dynamodb", region_name="us-east-1")
    out = {}
    for page in client.get_paginator("scan").paginate(TableName=TABLE):
        for raw in page["Items"]:
            data = {k: deserialize(v) for k, v in raw.items()}
            out[(data["PK"], data["SK"])] = data
    return out


def review(user: str, rest: str, n: int, text: str = "ok") -> str:
    return json.dumps({"PK": f"USER#{user}", "SK": f"REST#{rest}", "GSI1PK": f"REST#{rest}",
                       "GSI1SK": f"#REVIEW#{n:040x}", "id": f"{n:040x}", "restaurant": rest, "username": user,
                       "rating": 4, "review": text, "created_at": f"2021-01-01T00:00:{n % 60:02d}"})


def test_load_writes_good_lines_and_reports_bad_ones(moto_settings, fake_cache, tmp_path):
    lines = [review(f"u{i}", "Thai", i) for i in range(60)]
    lines[5] = "{broken"
    lines[40] = "[]"
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = pipeline.load_file(path, settings=moto_settings, workers=1)
    assert (report.lines, report.written, report.rejected, report.ok) == (60, 58, 2, False)
    assert [(r.line, r.text) for r in report.sample_rejects] == [(6, "{broken"), (41, "[]")]
    assert [r.line for r in read_rejects(report.rejects_path)] == [6, 41]
    assert report.rejects_path == str(tmp_path / "items.jsonl.rejects.jsonl")
    assert len(table_items()) == 58
    assert not (tmp_path / "items.jsonl.checkpoint").exists()  # finished: nothing to resume


def test_duplicate_keys_never_reach_dynamodb_in_one_batch_and_the_last_line_wins(moto_settings, fake_cache,
                                                                                 tmp_path):
    lines = [review("amy", "Thai", 1, text=f"version {v}") for v in range(3)] + [review("bob", "Thai", 2)]
    path = tmp_path / "dupes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = pipeline.load_file(path, settings=moto_settings, workers=1)
    assert (report.written, report.rejected, report.duplicates) == (4, 0, 2)
    assert table_items()[("USER#amy", "REST#Thai")]["review"] == "version 2"


def test_with_one_writer_a_key_repeated_across_blocks_keeps_file_order(moto_settings, fake_cache, tmp_path):
    lines = [review("amy", "Thai", 0, text="first")]
    lines += [review(f"u{i}", "Thai", i) for i in range(1, 200)]
    lines += [review("amy", "Thai", 0, text="last")]
    path = tmp_path / "order.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = pipeline.load_file(path, settings=moto_settings, workers=1, threads=8, block_bytes=4096)
    assert report.written == 201
    assert table_items()[("USER#amy", "REST#Thai")]["review"] == "last"


def test_write_around_invalidates_touched_summaries_and_never_fills(moto_settings, fake_cache, tmp_path):
    engine = fake_cache(moto_settings)()
    old = Summary({"name": "Thai", "version": 0}, [])
    engine.store_many([("Thai", old, 0.01), ("Other", old, 0.01)])
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(review(f"u{i}", "Thai", i) for i in range(30)) + "\n")
    report = pipeline.load_file(path, settings=moto_settings, workers=1)
    assert report.invalidated == 1 and report.invalidation_skipped == 0
    assert engine.peek("Thai") is NO_VALUE  # gone: the next read sees the new reviews
    assert engine.peek("Other") is not NO_VALUE  # untouched restaurants keep their entry
    keys = {k.decode() for k in engine.redis.scan_iter(match=engine.keys.summary_pattern())}
    assert keys == {engine.keys.summary("Other")}  # the load filled nothing


def test_an_unavailable_cache_does_not_fail_the_load(moto_settings, monkeypatch, tmp_path):
    monkeypatch.setattr(block_writer, "settings_engine_factory", lambda settings: lambda: FlakyEngine(fail_after=0))
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(review(f"u{i}", f"R{i % 3}", i) for i in range(30)) + "\n")
    report = pipeline.load_file(path, settings=moto_settings, workers=1)
    assert report.ok and report.written == 30
    assert report.invalidated == 0 and report.invalidation_skipped == 3


def test_resume_skips_finished_blocks_after_a_failure(moto_settings, fake_cache, monkeypatch, tmp_path):
    lines = [review(f"u{i}", "Thai", i) for i in range(400)]
    lines[3] = "not json"
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    real_write = BatchWriter.write
    calls = {"n": 0}

    def failing_write(self, batch):
        calls["n"] += 1
        if calls["n"] == 12:
            raise StillUnprocessed("simulated: DynamoDB is out of capacity")
        return real_write(self, batch)

    monkeypatch.setattr(BatchWriter, "write", failing_write)
    with pytest.raises(LoadFailed, match="re-run with --resume") as failure:
        pipeline.load_file(path, settings=moto_settings, workers=1, threads=1, block_bytes=8192)
    assert "out of capacity" in str(failure.value)
    checkpoint = tmp_path / "items.jsonl.checkpoint"
    finished = len(checkpoint.read_text().splitlines()) - 1
    assert finished >= 1

    monkeypatch.setattr(BatchWriter, "write", real_write)
    report = pipeline.load_file(path, settings=moto_settings, workers=1, block_bytes=8192, resume=True)
    assert report.resumed_lines > 0
    assert (report.lines, report.written, report.rejected) == (400, 399, 1)
    assert len(table_items()) == 399
    assert [r.line for r in read_rejects(report.rejects_path)] == [4]  # once, not once per run
    assert not checkpoint.exists()


def test_empty_input_and_missing_table(moto_settings, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError, match="empty"):
        pipeline.load_file(empty, settings=moto_settings)
    path = tmp_path / "one.jsonl"
    path.write_text(review("amy", "Thai", 1) + "\n")
    other = Settings(aws_region="us-east-1", table_name="Missing", redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(TableNotFoundError, match="--create-table"):
        pipeline.load_file(path, settings=other)
    report = pipeline.load_file(path, settings=other, create_table=True, invalidate=False)
    assert report.ok and report.written == 1

"""Issue 7, fault 5: DynamoDB throttling, injected by a proxy in front of dynalite.

dynalite never throttles and botocore's Stubber bypasses retries, so the proxy
(tests/support/dynamo_proxy.py) answers ``ProvisionedThroughputExceededException``
and ``ThrottlingException``, and trims ``UnprocessedItems``, on a script. All
items are written; every wait stays under its ceiling, the ceilings double up
to the cap, and past the retry bound the load stops with an error that says so.
"""

from __future__ import annotations

import itertools
import json
import math

import pytest

from cachewarm.backoff import Backoff
from cachewarm.settings import Settings
from devstack.dynamo_proxy import DynamoProxy
from loaders.errors import StillUnprocessed
from loaders.validate import parse_line
from loaders.writer import BatchWriter
from tests.support.cli import generate
from tests.support.tables import digest, source_items, table_items

pytestmark = [pytest.mark.integration, pytest.mark.slow]

THROTTLES = ["ProvisionedThroughputExceededException", "ThrottlingException"]


def test_throttled_load_writes_every_item_within_the_backoff_bounds(rel_env, table, dynalite, cli, tmp_path,
                                                                   record):
    from loaders.client import writer_client

    path = tmp_path / "items.jsonl"
    lines = generate(cli, rel_env, path, restaurants=20, reviews=20, seed=3)
    with DynamoProxy(dynalite.url) as proxy:
        # botocore retries a throttled request (DYNAMODB_MAX_ATTEMPTS); the loader's BatchWriter does the rest.
        env = {**rel_env, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url, "DYNAMODB_MAX_ATTEMPTS": "2"}
        per_call = writer_client(Settings.from_env(env)).meta.config.retries["total_max_attempts"]
        # Two requests botocore gives up on (every attempt throttled), then three partial answers.
        throttled = [THROTTLES[i % 2] for i in range(2 * per_call)]
        script = throttled + ["unprocessed"] * 3
        proxy.faults.script["BatchWriteItem"] = list(script)
        loaded = cli("load", str(path), "--threads", "1", "--json", env=env)
        arrivals = [t for t, op, _ in proxy.arrivals if op == "BatchWriteItem"]
        requests = proxy.counts["BatchWriteItem"]
    assert loaded.returncode == 0, loaded.stderr
    report = json.loads(loaded.stdout)
    assert (report["lines"], report["written"], report["rejected"]) == (lines, lines, 0)
    assert digest(table_items(table)) == digest(source_items(path))
    batches = math.ceil(lines / 25)
    assert requests == batches + len(script)  # one request more per injected fault, none lost or doubled
    assert report["retries"] == 2 + 3  # the loader's own rounds, reported
    gaps = [b - a for a, b in itertools.pairwise(arrivals[: len(script) + 1])]
    loader_rounds = [i for i in range(len(script)) if i >= len(throttled) or (i + 1) % per_call == 0]
    loader_waits = [gaps[i] for i in loader_rounds]
    botocore_rounds = [i for i in range(len(script)) if i not in loader_rounds]
    botocore_waits = [gaps[i] for i in botocore_rounds]
    backoff = Backoff()
    ceilings = [backoff.ceiling(n) for n in range(1, len(loader_waits) + 1)]
    slack = 0.5  # request time and scheduling on a busy 2-core machine
    assert all(w <= c + slack for w, c in zip(loader_waits, ceilings, strict=True)), (loader_waits, ceilings)
    # botocore's standard mode waits random x 1 s x 2^(attempt-1) after a throttle, capped at 20 s.
    assert all(gaps[i] <= min(20, 2 ** (i % per_call)) + slack for i in botocore_rounds), botocore_waits
    record(lines=lines, injected=len(script), botocore_attempts_per_call=per_call, requests=requests,
           reported_retries=report["retries"], loader_waits_s=[round(w, 3) for w in loader_waits],
           loader_ceilings_s=ceilings, botocore_waits_s=[round(w, 3) for w in botocore_waits],
           seconds=round(report["seconds"], 2), lost=0)


def _items(count: int) -> list:
    return [parse_line(json.dumps({"PK": f"T#{i}", "SK": f"T#{i}", "n": i}).encode(), i + 1) for i in range(count)]


def test_past_the_retry_bound_the_writer_stops_and_says_so(rel_env, table, dynalite, record):
    import boto3
    from botocore.config import Config

    settings = Settings.from_env(rel_env)
    with DynamoProxy(dynalite.url) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.url, region_name=settings.aws_region,
                              aws_access_key_id="local", aws_secret_access_key="local",
                              config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
        slept: list[float] = []
        bound = Backoff(retries=5, base=0.05, cap=0.4)
        # Jitter off (rand = 1), so each wait is its ceiling: the growth is exact.
        writer = BatchWriter(client, table.table_name, backoff=bound, sleep=slept.append, rand=lambda: 1.0)

        proxy.faults.errors["BatchWriteItem"] = ["ThrottlingException", 10**6]  # throttled for good
        with pytest.raises(StillUnprocessed, match="25 items were still not written after 5 retries"):
            writer.write(_items(25))
        assert slept == [0.1, 0.2, 0.4, 0.4, 0.4]  # doubling, then capped
        assert proxy.counts["BatchWriteItem"] == 1 + bound.retries

        slept.clear()
        proxy.faults.errors.clear()
        proxy.faults.unprocessed = 10**6  # every answer writes one item and hands the rest back
        with pytest.raises(StillUnprocessed, match="19 items were still not written after 5 retries"):
            writer.write(_items(25))
        assert slept == [0.1, 0.2, 0.4, 0.4, 0.4]

        proxy.faults.unprocessed = 0  # capacity is back: the same items go through, idempotently
        outcome = writer.write(_items(25))
    assert outcome.written == 25 and outcome.retries == 0
    assert len(table_items(table)) == 25
    record(retry_bound=bound.retries, waits_s=[0.1, 0.2, 0.4, 0.4, 0.4], cap_s=bound.cap,
           error="StillUnprocessed: 25 items were still not written after 5 retries with backoff; ...")

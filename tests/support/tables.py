"""Reading and writing a test's DynamoDB table directly, and comparing it with its source file."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

from cachewarm.batching import chunked

#: BatchWriteItem's limit per request.
BATCH_WRITE_LIMIT = 25


def batch_put(repo, items: list[dict]) -> None:
    """Write items with BatchWriteItem, 25 at a time, retrying unprocessed ones (set-up, not under test)."""
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer().serialize
    for batch in chunked(items, BATCH_WRITE_LIMIT):
        request = {repo.table_name: [{"PutRequest": {"Item": {k: ser(v) for k, v in item.items()}}}
                                     for item in batch]}
        while request:
            request = repo.client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def table_items(repo) -> list[dict]:
    """Every item in the table (a full scan)."""
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    out, kwargs = [], {"TableName": repo.table_name}
    while True:
        page = repo.client.scan(**kwargs)
        out += [{k: deserialize(v) for k, v in raw.items()} for raw in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def count_items(repo) -> int:
    """How many items the table holds (a counting scan)."""
    total, kwargs = 0, {"TableName": repo.table_name, "Select": "COUNT"}
    while True:
        page = repo.client.scan(**kwargs)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def canonical(value):
    """One form for a value read from JSON (numbers as Decimal) or from DynamoDB."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        number = Decimal(value)
        return "0" if number.is_zero() else format(number.normalize(), "f")  # DynamoDB stores -0 as 0
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    raise TypeError(type(value))


def digest(items) -> tuple[int, str]:
    """(count, sha256) of items, independent of their order."""
    lines = sorted(json.dumps(canonical(item), sort_keys=True, ensure_ascii=False) for item in items)
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def source_items(path: Path, skip_lines: set[int] = frozenset()) -> list[dict]:
    """The items a JSON-lines file should leave in the table: the last line wins per key."""
    latest: dict[tuple[str, str], dict] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number in skip_lines:
                continue
            item = json.loads(raw, parse_float=Decimal, parse_int=Decimal)
            latest[(item["PK"], item["SK"])] = item
    return list(latest.values())

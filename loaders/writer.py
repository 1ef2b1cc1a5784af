"""BatchWriteItem with the retries boto3's ``batch_writer`` lacks.

Three layers of retry, each for what it can fix:

* botocore's ``standard`` retry mode (the client's configuration) retries a
  *request* that failed for throttling, a 5xx or a transport error, with
  exponential backoff and jitter;
* :class:`BatchWriter` retries the ``UnprocessedItems`` of a request that
  *succeeded*, which botocore never does, with capped exponential backoff and
  full jitter, a bounded number of times; it also gives a request that still
  failed after botocore's attempts a few more rounds;
* a batch DynamoDB refuses as invalid is split into single puts, so one bad
  item is rejected alone and its 24 neighbours are still written.

A batch never holds two items with the same key (DynamoDB refuses such a
batch): :func:`dedupe` keeps the last line for each key.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cachewarm.backoff import Backoff
from cachewarm.batching import chunked
from cachewarm.errors import RetryableError
from cachewarm.repository import translate_errors
from loaders.errors import StillUnprocessed
from loaders.validate import Item, Reject, decode_text

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import WriteRequestTypeDef

#: DynamoDB's BatchWriteItem limit.
BATCH_SIZE = 25


@dataclass
class BatchOutcome:
    """What one batch write did."""

    written: int = 0
    rejects: list[Reject] = field(default_factory=list)
    retries: int = 0


def dedupe(items: Iterable[Item]) -> tuple[list[Item], dict[tuple[str, str], list[Item]]]:
    """Keep the last item for each key; return them and, per key, the earlier items they superseded."""
    latest: dict[tuple[str, str], Item] = {}
    superseded: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        previous = latest.pop(item.key, None)  # re-inserted below: items stay in the order of their last line
        if previous is not None:
            superseded.setdefault(item.key, []).append(previous)
        latest[item.key] = item
    return list(latest.values()), superseded


def batches(items: Sequence[Item], size: int = BATCH_SIZE) -> list[list[Item]]:
    """Split into ``BatchWriteItem``-sized lists."""
    return chunked(items, size)


class BatchWriter:
    """Writes batches of unique-key items to one table. Thread-safe (botocore clients are)."""

    def __init__(
        self,
        client: DynamoDBClient,
        table_name: str,
        *,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ):
        self.client = client
        self.table_name = table_name
        self.backoff = backoff
        self.sleep = sleep
        self.rand = rand

    def write(self, items: Sequence[Item]) -> BatchOutcome:
        """Put up to 25 items. Returns how many were written and which DynamoDB refused.

        Raises :class:`StillUnprocessed` (retryable) when items stay unprocessed
        after every bounded retry, and a translated error for anything permanent.
        """
        unique, superseded = dedupe(items)
        if superseded:  # callers normally dedupe a whole block first; stay safe anyway
            raise ValueError("a batch must not hold two items with the same key")
        outcome = BatchOutcome()
        pending: list[Item] = list(unique)
        attempt = 0
        while pending:
            try:
                unprocessed = self._batch_write(pending)
            except _Invalid:
                written, rejects, retries = self._isolate(pending)
                outcome.written += written
                outcome.rejects += rejects
                outcome.retries += retries
                return outcome
            except RetryableError as exc:
                attempt = self._wait(attempt, len(pending), exc)
                outcome.retries += 1
                continue
            outcome.written += len(pending) - len(unprocessed)
            if not unprocessed:
                break
            attempt = self._wait(attempt, len(unprocessed), None)
            outcome.retries += 1
            pending = unprocessed
        return outcome

    # -- internals -------------------------------------------------------------
    def _batch_write(self, items: list[Item]) -> list[Item]:
        """One BatchWriteItem; returns the items DynamoDB left unprocessed."""
        from botocore.exceptions import ClientError

        request: list[WriteRequestTypeDef] = [{"PutRequest": {"Item": item.av}} for item in items]
        with translate_errors(self.table_name):
            try:
                response = self.client.batch_write_item(RequestItems={self.table_name: request})
            except ClientError as exc:
                if _code(exc) == "ValidationException":
                    raise _Invalid(_message(exc)) from None
                raise
        left = (response.get("UnprocessedItems") or {}).get(self.table_name) or []
        if not left:
            return []
        by_key = {item.key: item for item in items}
        out = []
        for request_item in left:
            attributes = request_item["PutRequest"]["Item"]
            out.append(by_key[(attributes["PK"]["S"], attributes["SK"]["S"])])
        return out

    def _isolate(self, items: list[Item]) -> tuple[int, list[Reject], int]:
        """Write items one at a time, so DynamoDB names the invalid ones."""
        from botocore.exceptions import ClientError

        written, rejects, retries = 0, [], 0
        for item in items:
            attempt = 0
            while True:
                try:
                    with translate_errors(self.table_name):
                        try:
                            self.client.put_item(TableName=self.table_name, Item=item.av)
                        except ClientError as exc:
                            if _code(exc) == "ValidationException":
                                raise _Invalid(_message(exc)) from None
                            raise
                    written += 1
                    break
                except _Invalid as exc:
                    rejects.append(Reject(item.line, f"DynamoDB refused the item: {exc}", decode_text(item.raw)))
                    break
                except RetryableError as exc:
                    attempt = self._wait(attempt, 1, exc)
                    retries += 1
        return written, rejects, retries

    def _wait(self, attempt: int, count: int, error: BaseException | None) -> int:
        attempt += 1
        if attempt > self.backoff.retries:
            why = f"the last error was: {error}" if error else "DynamoDB kept returning them as UnprocessedItems"
            raise StillUnprocessed(
                f"{count} items were still not written after {self.backoff.retries} retries with backoff; "
                f"{why}. Re-run with --resume when DynamoDB has capacity again"
            )
        self.sleep(self.backoff.delay(attempt, self.rand))
        return attempt


class _Invalid(Exception):
    """DynamoDB refused the request as invalid (ValidationException)."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", exc))

"""Follow a table's DynamoDB stream on one machine, as Lambda's event source mapping does on AWS.

``cachewarm feed follow`` runs this against the dynalite launcher, which serves
the Streams API (``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``); it works against AWS
too, for one reader. It hands every batch of records to the same handler the
Lambda function runs (:func:`cachewarm.change_capture.handle_records`), with the
same guarantees:

* in order per shard, and nothing is skipped: when the handler reports failed
  records (Redis unreachable), the batch is retried from the first failed record
  with capped, jittered backoff, and nothing newer is read until it succeeds;
* redelivery is harmless: an invalidation may run twice, never zero times.

What it does not do: its position lives in memory, so a restarted follower
starts again at the trim horizon (invalidating again what it saw before, which
costs misses, never staleness), and it reads shards one after another rather
than with one reader per shard (Lambda's parallelism), which is plenty for one
machine.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cachewarm.backoff import Backoff
from cachewarm.errors import PermanentError

log = logging.getLogger(__name__)

#: GetRecords' maximum, and Lambda's default batch size for streams is 100: one call reads everything pending.
RECORDS_PER_CALL = 1000
#: Waits between attempts at a failed batch: up to 5 s, forever (nothing may be skipped).
RETRY = Backoff(retries=0, base=0.1, cap=5.0)
#: How often the shard list is read again (AWS splits shards about every four hours).
SHARD_REFRESH_SECONDS = 60.0

#: Takes a batch of records (boto3's shape), returns the sequence numbers to deliver again.
Handler = Callable[[list[Mapping[str, Any]]], list[str]]


class NoStreamError(PermanentError):
    """The table has no stream to follow."""


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None = None
    last_sequence: str | None = None
    pending: list[Mapping[str, Any]] = field(default_factory=list)  # a batch still to be handled
    failures: int = 0
    closed: bool = False


class StreamFollower:
    """Reads every shard of ``table_name``'s latest stream and feeds the records to ``handle``."""

    def __init__(
        self,
        streams: Any,
        dynamodb: Any,
        table_name: str,
        handle: Handler,
        *,
        poll_seconds: float = 0.25,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.streams = streams
        self.dynamodb = dynamodb
        self.table_name = table_name
        self.handle = handle
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.clock = clock
        self.stream_arn: str | None = None
        self.shards: dict[str, _Shard] = {}
        self._shards_read_at = float("-inf")
        self.handled = 0  # records handled so far

    # -- the loop ------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Poll until ``stop`` is set: a pass over the shards, then a short pause when nothing arrived."""
        from botocore.exceptions import BotoCoreError, ClientError

        stop = stop or threading.Event()
        outages = 0
        while not stop.is_set():
            try:
                handled = self.poll_once()
                outages = 0
            except (BotoCoreError, ClientError) as exc:
                # The endpoint restarting, the table not created yet, throttling: wait and try again.
                outages += 1
                wait = RETRY.delay(outages, random.random)
                log.warning("change feed: %s; retrying in %.2fs", exc, wait)
                stop.wait(wait)
                continue
            if handled == 0:
                stop.wait(self.poll_seconds)

    def poll_once(self) -> int:
        """One pass over the shards; returns how many records were handled."""
        if self.stream_arn is None:
            self.stream_arn = self._latest_stream_arn()
        if self.clock() - self._shards_read_at >= SHARD_REFRESH_SECONDS:
            self._read_shards()
        handled = 0
        for shard in list(self.shards.values()):
            if not shard.closed:
                handled += self._poll_shard(shard)
        return handled

    # -- one shard -----------------------------------------------------------
    def _poll_shard(self, shard: _Shard) -> int:
        if shard.pending:
            return self._deliver(shard, shard.pending)
        streams = self.streams.exceptions
        try:
            if shard.iterator is None:
                shard.iterator = self._iterator(shard)
            page = self.streams.get_records(ShardIterator=shard.iterator, Limit=RECORDS_PER_CALL)
        except streams.ExpiredIteratorException:
            shard.iterator = None  # taken again after the last handled record on the next pass
            return 0
        except streams.TrimmedDataAccessException:
            # Records older than the retention are gone: say so, and go on from the oldest kept.
            log.warning("change feed: shard %s lost records past the trim horizon; "
                        "the audit and the TTL cover what they held", shard.shard_id)
            shard.last_sequence, shard.iterator = None, None
            return 0
        except streams.ResourceNotFoundException:
            # The table (or the local launcher) was recreated: follow its new stream from the start.
            log.warning("change feed: stream %s is gone; looking up the table's stream again", self.stream_arn)
            self.stream_arn, self.shards, self._shards_read_at = None, {}, float("-inf")
            return 0
        shard.iterator = page.get("NextShardIterator")
        if shard.iterator is None:
            shard.closed = True  # a split or a disabled stream ended it; its children carry on
        records = page.get("Records", [])
        return self._deliver(shard, records) if records else 0

    def _deliver(self, shard: _Shard, records: list[Mapping[str, Any]]) -> int:
        failed = set(self.handle(records))
        if failed:
            # Everything from the first failed record is handled again, in order, before anything newer.
            first = next(i for i, record in enumerate(records) if _sequence(record) in failed)
            done, shard.pending = records[:first], records[first:]
            shard.failures += 1
            wait = RETRY.delay(shard.failures, random.random)
            log.warning("change feed: %d records of shard %s will be retried in %.2fs",
                        len(shard.pending), shard.shard_id, wait)
            self.sleep(wait)
        else:
            done, shard.pending, shard.failures = records, [], 0
        if done:
            shard.last_sequence = _sequence(done[-1])
        self.handled += len(done)
        return len(done)

    def _iterator(self, shard: _Shard) -> str:
        arguments: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard.shard_id}
        if shard.last_sequence is None:
            arguments["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            arguments.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.last_sequence)
        return self.streams.get_shard_iterator(**arguments)["ShardIterator"]

    # -- the stream and its shards --------------------------------------------
    def _latest_stream_arn(self) -> str:
        table = self.dynamodb.describe_table(TableName=self.table_name)["Table"]
        arn = table.get("LatestStreamArn")
        if not arn or not table.get("StreamSpecification", {}).get("StreamEnabled"):
            raise NoStreamError(f"table {self.table_name} has no stream: run 'cachewarm table create', "
                                "which turns it on (StreamViewType KEYS_ONLY)")
        return str(arn)

    def _read_shards(self) -> None:
        arguments: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.streams.describe_stream(**arguments)["StreamDescription"]
            for shard in description.get("Shards", []):
                self.shards.setdefault(shard["ShardId"], _Shard(shard["ShardId"]))
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            arguments["ExclusiveStartShardId"] = last
        self._shards_read_at = self.clock()


def _sequence(record: Mapping[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))

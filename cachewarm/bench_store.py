"""Benchmark runs stored durably in DynamoDB, in a ``BENCH#`` partition of the same table.

Redis may be evicted or restarted empty; the runs must survive that, so they
live next to the data they measured. Layout (no new index needed)::

    PK = BENCH#<run_id>   SK = RUN                       the whole run as JSON
    GSI1PK = BENCH        GSI1SK = RUN#<run_id>          lists runs newest first

Run ids start with a UTC timestamp, so GSI1SK sorts by time.
"""

from __future__ import annotations

import json
from typing import Any

from cachewarm.errors import PermanentError
from cachewarm.repository import GSI_NAME, RestaurantRepository, translate_errors

PARTITION = "BENCH"


class BenchmarkStore:
    """Save, list and load benchmark runs."""

    def __init__(self, repo: RestaurantRepository):
        self.repo = repo

    def save(self, run: dict[str, Any]) -> None:
        """Store one run (idempotent by run id)."""
        body = json.dumps(run, separators=(",", ":"))
        item = {
            "PK": {"S": f"{PARTITION}#{run['run_id']}"}, "SK": {"S": "RUN"},
            "GSI1PK": {"S": PARTITION}, "GSI1SK": {"S": f"RUN#{run['run_id']}"},
            "run_id": {"S": run["run_id"]}, "started_at": {"S": run["started_at"]},
            "run": {"S": body},
        }
        with translate_errors(self.repo.table_name):
            self.repo.client.put_item(TableName=self.repo.table_name, Item=item)

    def get(self, run_id: str) -> dict[str, Any]:
        """One run; PermanentError if there is none with that id."""
        with translate_errors(self.repo.table_name):
            item = self.repo.client.get_item(
                TableName=self.repo.table_name,
                Key={"PK": {"S": f"{PARTITION}#{run_id}"}, "SK": {"S": "RUN"}},
            ).get("Item")
        if item is None:
            raise PermanentError(f"no benchmark run {run_id!r}; 'cachewarm bench list' shows the runs")
        return json.loads(item["run"]["S"])

    def list(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs first, without their raw samples."""
        runs: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.repo.table_name, "IndexName": GSI_NAME,
            "KeyConditionExpression": "GSI1PK = :p AND begins_with(GSI1SK, :r)",
            "ExpressionAttributeValues": {":p": {"S": PARTITION}, ":r": {"S": "RUN#"}},
            "ScanIndexForward": False, "Limit": limit,
        }
        with translate_errors(self.repo.table_name):
            page = self.repo.client.query(**kwargs)
        for item in page.get("Items", []):
            run = json.loads(item["run"]["S"])
            run.pop("samples", None)
            run.pop("names", None)
            runs.append(run)
        return runs

"""The demo's change-feed step (cachewarm_cli/demo_feed.py) on moto and fakeredis.

moto 5 answers DescribeStream "Not yet implemented", so the stream is played by
the client: each write through it hands a KEYS_ONLY record to the Lambda's
handler a little later, on a thread, as ``cachewarm feed follow`` does on the
local stack. Without that feed, the step fails with one line and exit code 1.
"""

from __future__ import annotations

import threading
import time

import fakeredis
import pytest
from rich.console import Console

from cachewarm.cache import CacheAside
from cachewarm.change_capture import handle_records
from cachewarm.repository import RestaurantRepository
from cachewarm.settings import Settings
from cachewarm_cli.demo_feed import run_feed_step
from tests.support.items import put_items, restaurant, review
from tests.unit.conftest import REGION, TABLE

NAME = "Feed Demo Diner"


@pytest.fixture
def engine(repo, fake_server) -> CacheAside:
    put_items(repo, [restaurant(NAME), review(NAME, "a" * 40, "2024-01-01T00:00:00", user="old")])
    settings = Settings(aws_region=REGION, table_name=TABLE, change_hold_off_ms=200)
    return CacheAside(fakeredis.FakeRedis(server=fake_server), repo, settings)


def output() -> tuple[Console, object]:
    console = Console(record=True, width=200, force_terminal=False)
    return console, console.export_text


class FeedingClient:
    """The table's client, whose writes reach the handler as stream records ``lag`` seconds later."""

    def __init__(self, client, engine: CacheAside, lag: float = 0.05):
        self.client, self.engine, self.lag = client, engine, lag
        self.threads: list[threading.Thread] = []
        self.sequence = 0

    def __getattr__(self, name):
        return getattr(self.client, name)

    def _write(self, operation: str, key: dict, **kwargs):
        answer = getattr(self.client, operation)(**kwargs)
        self.sequence += 1
        record = {"eventSource": "aws:dynamodb",
                  "dynamodb": {"Keys": key, "SequenceNumber": str(self.sequence),
                               "ApproximateCreationDateTime": time.time(), "StreamViewType": "KEYS_ONLY"}}

        def deliver():
            time.sleep(self.lag)
            handle_records([record], self.engine, hold_off_ms=self.engine.settings.change_hold_off_ms)

        thread = threading.Thread(target=deliver, daemon=True)
        thread.start()
        self.threads.append(thread)
        return answer

    def put_item(self, **kwargs):
        return self._write("put_item", {k: kwargs["Item"][k] for k in ("PK", "SK")}, **kwargs)

    def update_item(self, **kwargs):
        return self._write("update_item", kwargs["Key"], **kwargs)

    def delete_item(self, **kwargs):
        return self._write("delete_item", kwargs["Key"], **kwargs)


def test_each_direct_write_shows_in_get_through_the_feed(repo, engine):
    feeding = RestaurantRepository(FeedingClient(repo.client, engine), TABLE)
    console, text = output()
    code = run_feed_step(console, engine, feeding, NAME, visible_within=5, catch_up_within=5)
    out = text()
    assert code == 0, out
    for write in ("review put", "cuisine update (Thai -> Lao)", "review delete"):
        assert f"{write}" in out and "visible in get after" in out
    assert "these 3 writes p50" in out
    cached = engine.peek(NAME).summary  # cached again after the hold-off, with every write
    assert cached.restaurant["cuisine"] == "Lao" and [r["id"] for r in cached.reviews] == ["a" * 40]


def test_without_a_feed_the_step_fails_with_one_line(repo, engine):
    console, text = output()
    assert run_feed_step(console, engine, repo, NAME, visible_within=0.3, catch_up_within=0.3) == 1
    out = text()
    assert "change feed failed: the feed did not catch up with the earlier writes: not within 0.3 s" in out
    assert "Traceback" not in out
    # The probe is gone again: the table holds only what the test put there.
    assert repo.client.scan(TableName=TABLE, Select="COUNT")["Count"] == 2

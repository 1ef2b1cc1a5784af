"""The demo's change-feed step: another application writes straight to the table, and ``get`` shows it.

``cachewarm demo`` starts the real ``cachewarm feed follow`` (the Procfile's
``feed`` process) next to the worker and beat (:func:`start_follower`). Then
:func:`run_feed_step` plays "your application": with the repository's boto3
client, never through cachewarm, it puts a review newer than any other of a
cached restaurant, updates the restaurant's ``cuisine`` and deletes the review.
Before each write the summary is cached; after it, ``engine.fetch`` is polled
until the summary shows the write, and the time that took is printed. After a
feed invalidation reads are served from DynamoDB and not stored for the hold-off
(``CACHE_CHANGE_HOLD_OFF_MS``), so the next write waits until the summary is
cached again. A write that does not show within :data:`VISIBLE_WITHIN` seconds
fails the demo with one line and exit code 1.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cachewarm_cli.output import printable

if TYPE_CHECKING:
    from cachewarm.cache import CacheAside, FetchResult
    from cachewarm.model import Summary
    from cachewarm.repository import RestaurantRepository
    from devstack.localstack import Service

#: A direct write must show in ``get`` within this many seconds, or the demo fails.
VISIBLE_WITHIN = 10.0
#: Seconds between reads while waiting for a write to show.
POLL_SECONDS = 0.005
#: The feed reads what was written before it started (the load, the benchmark's runs) first.
CATCH_UP_WITHIN = 30.0
#: The demo application's reviewer (one per run, so its review never collides with an earlier run's).
DEMO_USER = "demo-app"


class FeedStepFailed(Exception):
    """A write did not become visible in time; the message is the line to print."""


def start_follower(demo_dir: Path, env: Mapping[str, str]) -> Service:
    """Start ``cachewarm feed follow`` logging under ``demo_dir``; returns once it follows the stream."""
    from devstack.localstack import start_process, wait_for_log

    cachewarm = Path(sys.executable).parent / "cachewarm"
    feed = start_process("demo-feed", [str(cachewarm), "feed", "follow"], demo_dir, env)
    wait_for_log(feed, "following table", timeout=60)
    return feed


def wait_for(check: Callable[[], bool], timeout: float, what: str, *, poll: float = POLL_SECONDS,
             alive: Callable[[], str | None] = lambda: None) -> float:
    """Poll ``check`` until it is true; returns the milliseconds it took, else raises FeedStepFailed."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    while not check():
        problem = alive()
        if problem:
            raise FeedStepFailed(f"{what}: {problem}")
        if time.perf_counter() >= deadline:
            raise FeedStepFailed(f"{what}: not within {timeout:g} s")
        time.sleep(poll)
    return (time.perf_counter() - t0) * 1000.0


def watch(engine: CacheAside, name: str, shows: Callable[[Summary | None], bool], timeout: float, what: str, *,
          alive: Callable[[], str | None] = lambda: None) -> tuple[float, FetchResult]:
    """Read ``name`` until its summary ``shows`` a write: (milliseconds, the read that showed it)."""
    last: list[FetchResult] = []

    def visible() -> bool:
        last[:] = [engine.fetch(name)]
        return shows(last[0].summary)

    return wait_for(visible, timeout, what, alive=alive), last[0]


def run_feed_step(console: Console, engine: CacheAside, repo: RestaurantRepository, name: str,
                  feed: Service | None = None, *, visible_within: float = VISIBLE_WITHIN,
                  catch_up_within: float = CATCH_UP_WITHIN) -> int:
    """Three direct writes to ``name``, each watched until ``engine.fetch`` shows it; returns the exit code."""
    try:
        _run(console, engine, repo, name, feed, visible_within, catch_up_within)
    except FeedStepFailed as exc:
        console.print(f"[red]change feed failed:[/] {escape(printable(exc))}", soft_wrap=True)
        if feed is not None:
            console.print(f"feed log: {feed.log_path}", markup=False, soft_wrap=True)
        return 1
    return 0


def _run(console: Console, engine: CacheAside, repo: RestaurantRepository, name: str, feed: Service | None,
         visible_within: float, catch_up_within: float) -> None:
    from boto3.dynamodb.types import TypeSerializer

    from cachewarm.cache import NO_VALUE
    from cachewarm.stats import feed_lag

    serialize = TypeSerializer().serialize
    client, table = repo.client, repo.table_name
    hold_off_ms = engine.settings.change_hold_off_ms

    def alive() -> str | None:
        if feed is not None and feed.process.poll() is not None:
            return f"cachewarm feed follow exited with code {feed.process.returncode}"
        return None

    def cached() -> bool:
        engine.fetch(name)
        return engine.peek(name) is not NO_VALUE

    def cache_it(what: str) -> None:
        # A feed invalidation holds fills off for a while: reads come from DynamoDB until it ends.
        waited = wait_for(cached, hold_off_ms / 1000.0 + visible_within, f"caching {name!r} {what}",
                          poll=0.05, alive=alive)
        note = f", after {waited:,.0f} ms of the hold-off" if waited > 100 else ""
        console.print(f"  cached {what}{note}", markup=False)

    caught_up = _catch_up(engine, client, table, serialize, catch_up_within, alive)
    console.print(f"feed follow has handled the writes made before it started ({caught_up:,.0f} ms)", markup=False)
    before = engine.fetch(name).summary
    if before is None:
        raise FeedStepFailed(f"restaurant {name!r} is not in the table")
    review_id = secrets.token_hex(20)
    user = f"{DEMO_USER}-{secrets.token_hex(3)}"
    newest = max([str(r.get("created_at", "")) for r in before.reviews], default="")
    created_at = max(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"), _later(newest))
    cuisine = "Lao" if before.restaurant.get("cuisine") != "Lao" else "Khmer"
    restaurant_key = {"PK": serialize(f"REST#{name}"), "SK": serialize(f"REST#{name}")}
    review_key = {"PK": serialize(f"USER#{user}"), "SK": serialize(f"REST#{name}")}
    review = {"PK": f"USER#{user}", "SK": f"REST#{name}", "GSI1PK": f"REST#{name}", "GSI1SK": f"#REVIEW#{review_id}",
              "id": review_id, "restaurant": name, "username": user, "rating": 5,
              "review": "Written by another application, straight to the table.", "created_at": created_at}
    console.print(f"your application writes to {printable(name)!r} with boto3 (the repository's client), not "
                  f"through cachewarm; after each feed invalidation, reads come from DynamoDB uncached for "
                  f"{hold_off_ms:,} ms (the hold-off)", markup=False, soft_wrap=True)

    def has_review(summary: Summary | None) -> bool:
        return summary is not None and any(r.get("id") == review_id for r in summary.reviews)

    writes: list[tuple[str, Callable[[], Any], Callable[[Summary | None], bool]]] = [
        (f"review put (created_at {created_at}, the newest)",
         lambda: client.put_item(TableName=table, Item={k: serialize(v) for k, v in review.items()}),
         lambda s: s is not None and bool(s.reviews) and s.reviews[0].get("id") == review_id),
        (f"cuisine update ({before.restaurant.get('cuisine')} -> {cuisine})",
         lambda: client.update_item(TableName=table, Key=restaurant_key, UpdateExpression="SET cuisine = :c",
                                    ExpressionAttributeValues={":c": serialize(cuisine)}),
         lambda s: s is not None and s.restaurant.get("cuisine") == cuisine),
        ("review delete (that review)",
         lambda: client.delete_item(TableName=table, Key=review_key),
         lambda s: s is not None and not has_review(s)),
    ]
    rows = []
    for label, write, shows in writes:
        cache_it(f"before the {label.split(' (')[0]}")
        write()
        ms, result = watch(engine, name, shows, visible_within, f"the {label} did not show in get", alive=alive)
        rows.append((label, ms, result))
        console.print(f"  {label}: visible in get after {ms:,.0f} ms "
                      f"(read from {result.source}, cache {result.cache})", markup=False)
    cache_it("again once the hold-off ended")
    entry = engine.peek(name)
    if entry is NO_VALUE or not all(shows(entry.summary) for _, _, shows in writes[1:]):
        raise FeedStepFailed(f"the summary cached after the hold-off misses a write: {entry!r}")

    out = Table("direct write", "visible in get after", "that read", title=f"{printable(name)}: write to visible")
    for label, ms, result in rows:
        out.add_row(label, f"{ms:,.0f} ms", f"{result.source} (cache {result.cache})")
    console.print(out)
    mine = feed_lag(engine.redis, engine.keys, samples=len(writes))
    every = feed_lag(engine.redis, engine.keys)
    console.print(f"change feed lag, write to invalidation (cachewarm stats' samples): these {len(writes)} writes "
                  f"p50 {_ms(mine['p50_ms'])}, p99 {_ms(mine['p99_ms'])}; all {every['count']:,} samples "
                  f"(with the writes it caught up on) p50 {_ms(every['p50_ms'])}, p99 {_ms(every['p99_ms'])}",
                  markup=False, soft_wrap=True)


def _catch_up(engine: CacheAside, client: Any, table: str, serialize: Callable[[Any], Any], timeout: float,
              alive: Callable[[], str | None]) -> float:
    """Milliseconds until the feed has handled every record written before now.

    A probe: the cached "not found" of a name no restaurant has, then a write
    keyed to that name; records are handled in order, so once the probe's
    invalidation shows, everything before it was handled. The probe is deleted
    again (its removal is invalidated too, which is harmless).
    """
    from cachewarm.cache import NO_VALUE

    probe = f"cachewarm demo probe {secrets.token_hex(4)}"
    key = {"PK": serialize(f"USER#{DEMO_USER}-probe"), "SK": serialize(f"REST#{probe}")}
    engine.fetch(probe)  # caches "not found"
    if engine.peek(probe) is NO_VALUE:
        raise FeedStepFailed(f"could not cache the probe {probe!r}")
    client.put_item(TableName=table, Item=key)
    try:
        return wait_for(lambda: engine.peek(probe) is NO_VALUE, timeout,
                        "the feed did not catch up with the earlier writes", poll=0.02, alive=alive)
    finally:
        client.delete_item(TableName=table, Key=key)


def _later(created_at: str) -> str:
    """One second after an ISO 8601 ``created_at`` (``""`` for none)."""
    from datetime import timedelta

    if not created_at:
        return ""
    try:
        moment = datetime.fromisoformat(created_at[:19])
    except ValueError:
        return created_at + "Z"  # still sorts after it
    return (moment + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"

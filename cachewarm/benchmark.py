"""The lazy-loading benchmark: DynamoDB vs cache-aside miss vs cache hit, on the live system.

For each sampled restaurant it times, in order: a direct DynamoDB summary read;
a cold cache-aside read (miss, then fill); and a warm hit. It runs in a key
namespace of its own (``<prefix>-bench``) on the same Redis, so it never evicts
or invalidates the summaries that real readers use.
"""

from __future__ import annotations

import os
import platform
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cachewarm.cache import CacheAside
from cachewarm.errors import PermanentError
from cachewarm.masking import mask_url
from cachewarm.model import RESTAURANT_PREFIX
from cachewarm.percentiles import describe
from cachewarm.repository import RestaurantRepository, translate_errors
from cachewarm.settings import Settings

#: Items per scan segment the sampler aims for: small enough that a sample
#: reads a sliver of the table, large enough to hold a few restaurants.
ITEMS_PER_SEGMENT = 400
MAX_SAMPLE = 5000
SERIES = ("db_ms", "miss_ms", "hit_ms")


def sample_restaurants(repo: RestaurantRepository, n: int, *, rng: random.Random | None = None) -> list[str]:
    """Up to ``n`` restaurant names, uniformly at random, without scanning the whole table.

    The table is split into parallel-scan segments of about ``ITEMS_PER_SEGMENT``
    items; random segments are read (keys only, restaurants filtered server-side)
    until there are enough candidates, and ``n`` of them are drawn uniformly.
    Segments are hash ranges, so a random segment holds a random slice of names.
    """
    rng = rng or random.Random()
    total = max(1, repo.count_items() // ITEMS_PER_SEGMENT)
    order = list(range(total))
    rng.shuffle(order)
    candidates: list[str] = []
    with translate_errors(repo.table_name):
        for segment in order:
            kwargs: dict[str, Any] = {
                "TableName": repo.table_name, "Segment": segment, "TotalSegments": total,
                "ProjectionExpression": "PK, SK",
                "FilterExpression": "begins_with(PK, :rest) AND PK = SK",
                "ExpressionAttributeValues": {":rest": {"S": RESTAURANT_PREFIX}},
            }
            while True:
                page = repo.client.scan(**kwargs)
                candidates += [item["PK"]["S"][len(RESTAURANT_PREFIX):] for item in page.get("Items", [])]
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            if len(candidates) >= 2 * n:
                break
    candidates = sorted(set(candidates))
    return rng.sample(candidates, min(n, len(candidates)))


def code_version() -> str:
    """The package version, plus the checkout's commit when running from a git work tree.

    Read from ``.git`` directly: the core starts no processes (no ``git describe``).
    """
    from cachewarm import __version__

    commit = _git_head(Path(__file__).resolve().parent.parent / ".git")
    return f"{__version__}+g{commit[:12]}" if commit else __version__


def _git_head(git_dir: Path) -> str | None:
    """The commit HEAD names, from a loose or packed ref; None outside a checkout."""
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        loose = git_dir / ref
        if loose.exists():
            return loose.read_text().strip() or None
        for line in (git_dir / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        pass
    return None


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, unique run id such as ``20261128T031500Z-3f9a1c``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_benchmark(
    engine: CacheAside,
    repo: RestaurantRepository,
    settings: Settings,
    *,
    sample: int = 50,
    progress: Callable[[int, int], None] | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Measure and return one run (not yet stored): stats, speedups, raw samples, environment."""
    if not 1 <= sample <= MAX_SAMPLE:
        raise PermanentError(f"sample must be between 1 and {MAX_SAMPLE}, got {sample}")
    started = datetime.now(UTC)
    bench_settings = replace(settings, key_prefix=f"{settings.key_prefix}-bench", hot_sample_rate=0.0)
    bench = CacheAside(engine.redis, repo, bench_settings)
    names = sample_restaurants(repo, sample, rng=rng)
    if not names:
        raise PermanentError("the table holds no restaurants to sample; load data first")
    samples: dict[str, list[float]] = {series: [] for series in SERIES}
    sources: dict[str, list[str]] = {"miss": [], "hit": []}
    # One untimed read opens the connections, so the first sample is not a TCP handshake.
    repo.get_summary(names[0])
    engine.redis.ping()
    for done, name in enumerate(names, start=1):
        t0 = time.perf_counter()
        repo.get_summary(name)
        samples["db_ms"].append((time.perf_counter() - t0) * 1000.0)
        bench.invalidate(name)
        miss = bench.fetch(name)
        hit = bench.fetch(name)
        samples["miss_ms"].append(miss.latency_ms)
        samples["hit_ms"].append(hit.latency_ms)
        sources["miss"].append(miss.source)
        sources["hit"].append(hit.source)
        if progress is not None:
            progress(done, len(names))
    for name in names:
        bench.invalidate(name)  # leave nothing behind in the bench namespace
    stats = {series: describe(values) for series, values in samples.items()}
    hits = sources["hit"]
    return {
        "run_id": new_run_id(started),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sample": len(names),
        **stats,
        "speedup_p50": round(stats["db_ms"]["p50"] / max(stats["hit_ms"]["p50"], 1e-9), 2),
        "speedup_p99": round(stats["db_ms"]["p99"] / max(stats["hit_ms"]["p99"], 1e-9), 2),
        "hit_ratio": round(hits.count("cache") / len(hits), 4),
        "miss_from_db_ratio": round(sources["miss"].count("db") / len(names), 4),
        "environment": environment(repo, settings),
        "names": names,
        "samples": {series: [round(v, 4) for v in values] for series, values in samples.items()},
    }


def environment(repo: RestaurantRepository, settings: Settings) -> dict[str, Any]:
    """Where the run happened, with credentials removed."""
    return {
        "redis": mask_url(settings.cache_url),
        "dynamodb": mask_url(settings.dynamodb_endpoint) if settings.dynamodb_endpoint
        else f"aws:{settings.aws_region}",
        "table": settings.table_name,
        "item_count": repo.count_items(),
        "code_version": code_version(),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "pid": os.getpid(),
    }

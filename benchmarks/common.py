"""Shared plumbing for benchmarks: a private stack, seeded data, and figure records."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cachewarm import service
from cachewarm.settings import Settings
from devstack.localstack import Service, start_dynalite, start_redis


@dataclass
class Figure:
    """One measured figure, with its goal and the baseline measured in the same run."""

    name: str
    value: float
    unit: str
    goal: str
    baseline: float | None
    met: bool | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class BenchStack:
    """A private redis-server and dynalite, the environment pointing at them, and a table."""

    redis: Service
    dynalite: Service
    env: dict[str, str]
    workdir: Path

    @property
    def settings(self) -> Settings:
        """Settings for this stack."""
        return Settings.from_env(self.env)


@contextlib.contextmanager
def bench_stack(table: str = "BenchRestaurants") -> Iterator[BenchStack]:
    """Start redis-server and dynalite on free ports, never the machine's shared Redis."""
    workdir = Path(tempfile.mkdtemp(prefix="cachewarm-bench-"))
    redis_server = start_redis(workdir / "redis")
    dynalite = start_dynalite(workdir / "dynalite", persist=False)
    env = {k: v for k, v in os.environ.items() if k not in ("CACHE_REDIS_URL", "REDIS_HOSTNAME")}
    env.update(REDIS_URL=redis_server.url, AWS_ENDPOINT_URL_DYNAMODB=dynalite.url, AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", TABLE_NAME=table,
               CACHE_KEY_PREFIX=f"b{uuid.uuid4().hex[:6]}")
    saved = dict(os.environ)
    # The Celery app and the settings read os.environ: point them at this stack.
    os.environ.clear()
    os.environ.update(env)
    service.reset()
    try:
        stack = BenchStack(redis_server, dynalite, env, workdir)
        service.repository(stack.settings).create_table()
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        service.reset()
        dynalite.stop()
        redis_server.stop()


def seed(stack: BenchStack, *, restaurants: int, reviews_per_restaurant: int, seed_value: int = 7) -> list[str]:
    """Generate and load a data set with the project's own generator and loader; return the names."""
    import json

    from loaders import load_file
    from loaders.generate import generate_file

    path = stack.workdir / f"items-{restaurants}x{reviews_per_restaurant}.jsonl"
    generate_file(path, restaurants=restaurants, reviews_per_restaurant=reviews_per_restaurant, seed=seed_value)
    report = load_file(path, settings=stack.settings)
    if report.rejected:
        raise RuntimeError(f"seeding rejected {report.rejected} lines")
    names = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            item = json.loads(line)
            if item["PK"] == item["SK"] and item["PK"].startswith("REST#"):
                names.append(item["name"])
    return names


def p50(values: list[float]) -> float:
    """Median."""
    return statistics.median(values)


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1), linear interpolation."""
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=1000, method="inclusive")
    return cuts[min(998, max(0, round(q * 1000) - 1))]

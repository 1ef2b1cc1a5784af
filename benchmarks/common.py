"""Shared plumbing for benchmarks: a private stack, seeded data, and figure records."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cachewarm import service
from cachewarm.settings import Settings
from devstack.localstack import Service
from devstack.private import PrivateStack, private_stack, use_environ


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
    """A private redis-server and dynalite (:mod:`devstack.private`), the environment for them, and a table."""

    stack: PrivateStack
    env: dict[str, str]

    @property
    def redis(self) -> Service:
        """The stack's redis-server."""
        return self.stack.redis

    @property
    def dynalite(self) -> Service:
        """The stack's dynalite."""
        return self.stack.dynalite

    @property
    def workdir(self) -> Path:
        """Where the stack keeps its files (and the benchmarks their data sets)."""
        return self.stack.workdir

    @property
    def settings(self) -> Settings:
        """Settings for this stack."""
        return Settings.from_env(self.env)


@contextlib.contextmanager
def bench_stack(table: str = "BenchRestaurants") -> Iterator[BenchStack]:
    """Start redis-server and dynalite on free ports (never the machine's shared Redis) with a table.

    ``os.environ`` points at them inside the block: the Celery app and the settings read it.
    """
    workdir = Path(tempfile.mkdtemp(prefix="cachewarm-bench-"))
    try:
        with private_stack(workdir) as stack:
            env = stack.environ(table_name=table, key_prefix=f"b{uuid.uuid4().hex[:6]}")
            with use_environ(env):
                bench = BenchStack(stack, env)
                service.repository(bench.settings).create_table()
                yield bench
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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

"""Fixtures for fault-injection tests: the task ledger, private Redis servers that can be killed
and restarted on the same port, and a report of measured figures.

The helpers these tests share (the ledger reader, RedisProc, workers with the ledger, table
comparisons, ``wait_until``) live in ``tests/support/``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from devstack.localstack import PROJECT_ROOT
from tests.support.ledger import Ledger
from tests.support.redis_proc import RedisProc

REPORT = PROJECT_ROOT / "reports" / "reliability.json"


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    """An empty ledger file for this test."""
    return Ledger(tmp_path / "ledger.jsonl")


@pytest.fixture
def rel_env(stack_env, ledger) -> dict[str, str]:
    """The test's stack environment plus the ledger (workers started with the ledger write to it)."""
    return {**stack_env, "CACHEWARM_TASK_LEDGER": str(ledger.path)}


@pytest.fixture
def redis_proc(tmp_path) -> Iterator[Callable[..., RedisProc]]:
    """Factory: ``redis_proc(*extra_args)`` starts a private redis-server; all stop at teardown."""
    started: list[RedisProc] = []

    def start(*args: str) -> RedisProc:
        proc = RedisProc(tmp_path / f"redis-{uuid.uuid4().hex[:6]}", list(args)).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def figures() -> Iterator[dict]:
    """Figures measured by the tests, merged into reports/reliability.json at the end of the session."""
    measured: dict[str, dict] = {}
    yield measured
    if not measured:
        return
    REPORT.parent.mkdir(exist_ok=True)
    try:
        existing = json.loads(REPORT.read_text())
    except (OSError, ValueError):
        existing = {}
    existing.update(measured)
    tmp = REPORT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
    tmp.replace(REPORT)


@pytest.fixture
def record(figures, request) -> Callable[..., None]:
    """``record(key=value, ...)``: keep figures for this test (printed, and written to the report)."""

    def put(**values: object) -> None:
        entry = figures.setdefault(request.node.name, {})
        entry.update(values)
        entry["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(f"[reliability] {request.node.name}: {values}")

    return put

"""Fixtures for fault-injection tests: private Redis servers that can be killed and
restarted on the same port, a ledger of task executions, and a report of measured figures.

The ledger is a file outside every process under test (``CACHEWARM_TASK_LEDGER``,
written by ``devstack/ledger.py`` from each worker process), so "nothing lost"
and "how many duplicates" are counted from what really ran.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack.localstack import PROJECT_ROOT, Service, free_port, start_redis

REPORT = PROJECT_ROOT / "reports" / "reliability.json"
# --include: the ledger is test instrumentation from the dev stack, loaded only into these workers.
WORKER_ARGS = ["worker", "--loglevel=INFO", "--concurrency=2", "--without-mingle", "--without-gossip",
               "--include=devstack.ledger"]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll ``predicate`` until it is truthy; return the seconds it took (AssertionError on timeout)."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- the ledger -------------------------------------------------------------------------
@dataclass
class Ledger:
    """Reads the JSON lines that devstack/ledger.py appends."""

    path: Path

    def records(self) -> list[dict]:
        """Every record so far (a partially written last line is ignored)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_bytes().split(b"\n"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def successes(self, name: str | None = None) -> collections.Counter[str]:
        """SUCCESS count per task id (optionally of one task name)."""
        return collections.Counter(
            r["id"] for r in self.records()
            if r["event"] == "end" and r.get("state") == "SUCCESS" and (name is None or r["name"] == name)
        )

    def starts(self, name: str | None = None) -> collections.Counter[str]:
        """How many times each task id started (a redelivered task starts again)."""
        return collections.Counter(
            r["id"] for r in self.records() if r["event"] == "start" and (name is None or r["name"] == name)
        )

    def done(self, ids) -> bool:
        """True when every id in ``ids`` has succeeded at least once."""
        ok = self.successes()
        return all(ok[i] for i in ids)

    def missing(self, ids) -> list[str]:
        """Ids without a SUCCESS."""
        ok = self.successes()
        return [i for i in ids if not ok[i]]

    def duplicates(self, ids=None) -> int:
        """Extra SUCCESS lines beyond one per id (an idempotent task that ran twice)."""
        ok = self.successes()
        return sum(n - 1 for i, n in ok.items() if n > 1 and (ids is None or i in ids))

    def success_times(self, name: str | None = None) -> list[float]:
        """Wall-clock times of SUCCESS records, sorted."""
        return sorted(r["t"] for r in self.records()
                      if r["event"] == "end" and r.get("state") == "SUCCESS" and (name is None or r["name"] == name))


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    """An empty ledger file for this test."""
    return Ledger(tmp_path / "ledger.jsonl")


@pytest.fixture
def rel_env(stack_env, ledger) -> dict[str, str]:
    """The test's stack environment plus the ledger."""
    return {**stack_env, "CACHEWARM_TASK_LEDGER": str(ledger.path)}


# -- Redis servers we can kill and bring back ------------------------------------------
@dataclass
class RedisProc:
    """A private redis-server that keeps its port and directory across restarts."""

    workdir: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    service: Service | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> RedisProc:
        self.service = start_redis(self.workdir, port=self.port, extra_args=self.args,
                                   name=f"redis-{self.restarts}")
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        assert self.service is not None
        self.service.kill()

    def restart(self) -> float:
        """Start again on the same port and directory; return seconds until it accepted connections."""
        self.restarts += 1
        t0 = time.monotonic()
        self.start()
        return time.monotonic() - t0

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers (a hung server)."""
        assert self.service is not None
        os.kill(self.service.process.pid, 19)

    def resume(self) -> None:
        assert self.service is not None
        os.kill(self.service.process.pid, 18)

    def stop(self) -> None:
        if self.service is not None:
            self.resume_quietly()
            self.service.stop()

    def resume_quietly(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.resume()

    def client(self, db: int = 0):
        import redis

        return redis.Redis(host=self.host, port=self.port, db=db, socket_timeout=10)


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


# -- measured figures -------------------------------------------------------------------
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


def batch_put(repo, items: list[dict]) -> None:
    """Write items with BatchWriteItem, 25 at a time (test set-up, not under test)."""
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer().serialize
    for start in range(0, len(items), 25):
        request = {repo.table_name: [{"PutRequest": {"Item": {k: ser(v) for k, v in item.items()}}}
                                     for item in items[start:start + 25]]}
        while request:
            request = repo.client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def celery_app_for(env: dict[str, str]):
    """A Celery app (client) for ``env``'s broker."""
    from cachewarm.settings import Settings
    from workers.app import create_app

    return create_app(Settings.from_env(env))


def start_worker(celery_proc, env: dict[str, str], *extra: str, name: str = "worker", ready: bool = True):
    """A real ``celery -A workers worker`` (prefork, 2 processes)."""
    proc = celery_proc([*WORKER_ARGS, f"--hostname={name}-{uuid.uuid4().hex[:6]}@%h", *extra], env, name=name)
    if ready:
        proc.wait_for("ready.", timeout=60)
    return proc


# -- comparing a table with its source ----------------------------------------------------
def _canonical(value):
    """One form for a value read from JSON (numbers as Decimal) or from DynamoDB."""
    from decimal import Decimal

    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        number = Decimal(value)
        return "0" if number.is_zero() else format(number.normalize(), "f")  # DynamoDB stores -0 as 0
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    raise TypeError(type(value))


def digest(items) -> tuple[int, str]:
    """(count, sha256) of items, independent of their order."""
    import hashlib

    lines = sorted(json.dumps(_canonical(item), sort_keys=True, ensure_ascii=False) for item in items)
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def source_items(path: Path, skip_lines: set[int] = frozenset()) -> list[dict]:
    """The items a JSON-lines file should leave in the table: the last line wins per key."""
    from decimal import Decimal

    latest: dict[tuple[str, str], dict] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number in skip_lines:
                continue
            item = json.loads(raw, parse_float=Decimal, parse_int=Decimal)
            latest[(item["PK"], item["SK"])] = item
    return list(latest.values())


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


def generate(cli, env: dict[str, str], path: Path, restaurants: int, reviews: int = 20, seed: int = 7) -> int:
    """``cachewarm generate`` a sample file; return its line count."""
    done = cli("generate", "-o", str(path), "--restaurants", str(restaurants), "--reviews-per-restaurant",
               str(reviews), "--seed", str(seed), env=env)
    assert done.returncode == 0, done.stderr
    return sum(1 for _ in path.open("rb"))

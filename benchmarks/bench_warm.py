"""Warming through Celery vs a plain thread pool reading the same dynalite with the same concurrency.

Also counts Redis round trips per warmed chunk, on an instrumented connection.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import BenchStack, Figure
from cachewarm import service
from cachewarm.batching import chunked
from cachewarm.percentiles import percentile
from cachewarm.warming import DEFAULT_CONCURRENCY, warm_names

GOAL_RATIO = 0.8
WORKER_PROCESSES = 2
CHUNK = 100


def _baseline(stack: BenchStack, names: list[str], threads: int) -> float:
    repo = service.repository(stack.settings)
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(repo.get_summary, names):
            pass
    return len(names) / (time.perf_counter() - start)


@contextlib.contextmanager
def _celery_worker(stack: BenchStack):
    """A real worker subprocess on the stack; yields a Celery client app."""
    from workers.app import create_app

    app = create_app(stack.settings)
    log = open(stack.workdir / "bench-worker.log", "ab")  # noqa: SIM115
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "workers", "worker", "--loglevel=WARNING",
         f"--concurrency={WORKER_PROCESSES}", "--without-mingle", "--without-gossip",
         f"--hostname=bench-{uuid.uuid4().hex[:6]}@%h"],
        env=stack.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("benchmark worker did not start; see bench-worker.log")
        yield app
    finally:
        worker.terminate()
        worker.wait(60)
        log.close()
        app.close()


def _through_celery(app, names: list[str]) -> tuple[float, int]:
    from celery import group

    start = time.perf_counter()
    results = group(app.signature("cachewarm.warm_names", args=[chunk]) for chunk in chunked(names, CHUNK))()
    reports = results.get(timeout=900)
    elapsed = time.perf_counter() - start
    return len(names) / elapsed, sum(len(r["warmed"]) for r in reports)


def _round_trips_per_chunk(stack: BenchStack, names: list[str]) -> float:
    engine = service.engine(stack.settings)
    engine.redis.ping()  # connect first: the handshake is not part of a chunk's cost
    connection_class = engine.redis.connection_pool.connection_class
    sent = {"n": 0}
    original = connection_class.send_packed_command

    def counting(self, command, check_health=True):
        sent["n"] += 1
        return original(self, command, check_health)

    connection_class.send_packed_command = counting
    try:
        chunks = chunked(names[:1000], CHUNK)
        for chunk in chunks:
            warm_names(engine, chunk)
    finally:
        connection_class.send_packed_command = original
    return sent["n"] / len(chunks)


def run(stack: BenchStack, names: list[str], *, count: int = 10_000, rounds: int = 3) -> list[Figure]:
    """Warm ``count`` names both ways, alternating for ``rounds``; compare the medians.

    The thread pool gets the same total concurrency as the worker (processes x
    threads per task). Alternating rounds spread the shared machine's noise over both.
    """
    names = names[:count]
    threads = WORKER_PROCESSES * DEFAULT_CONCURRENCY
    baseline, ours, warmed = [], [], 0
    with _celery_worker(stack) as app:
        _through_celery(app, names[:200])  # warm-up: worker pools, connections
        for _ in range(rounds):
            baseline.append(_baseline(stack, names, threads))
            rate, warmed = _through_celery(app, names)
            ours.append(rate)
    ratio = percentile(ours, 0.5) / percentile(baseline, 0.5)
    trips = _round_trips_per_chunk(stack, names)
    return [
        Figure("warm_through_celery_vs_thread_pool", round(ratio, 3), "x thread-pool throughput",
               f">= {GOAL_RATIO}x", round(percentile(baseline, 0.5), 1), ratio >= GOAL_RATIO,
               {"celery_names_per_s": [round(r, 1) for r in ours],
                "thread_pool_names_per_s": [round(r, 1) for r in baseline],
                "names": len(names), "warmed": warmed, "concurrency": threads,
                "worker_processes": WORKER_PROCESSES, "threads_per_task": DEFAULT_CONCURRENCY, "chunk": CHUNK}),
        Figure("redis_round_trips_per_warm_chunk", round(trips, 3), "round trips", "== 1", None, trips <= 1.0,
               {"chunk": CHUNK}),
    ]

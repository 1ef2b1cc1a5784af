"""Warming through Celery vs a plain thread pool reading the same dynalite with the same concurrency.

Also counts Redis round trips per warmed chunk, on an instrumented connection.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import BenchStack, Figure
from cachewarm import service
from cachewarm.warming import DEFAULT_CONCURRENCY, chunked, warm_names

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


def _through_celery(stack: BenchStack, names: list[str]) -> tuple[float, int]:
    from celery import group

    from workers import app

    log = open(stack.workdir / "bench-worker.log", "ab")  # noqa: SIM115
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "workers", "worker", "--loglevel=WARNING",
         f"--concurrency={WORKER_PROCESSES}", "--without-mingle", "--without-gossip",
         f"--hostname=bench-{uuid.uuid4().hex[:6]}@%h"],
        env=stack.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        ping_deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > ping_deadline or worker.poll() is not None:
                raise RuntimeError("benchmark worker did not start; see bench-worker.log")
        start = time.perf_counter()
        results = group(app.signature("cachewarm.warm_names", args=[chunk]) for chunk in chunked(names, CHUNK))()
        reports = results.get(timeout=900)
        elapsed = time.perf_counter() - start
        warmed = sum(len(r["warmed"]) for r in reports)
        return len(names) / elapsed, warmed
    finally:
        worker.terminate()
        worker.wait(60)
        log.close()


def _round_trips_per_chunk(stack: BenchStack, names: list[str]) -> float:
    engine = service.engine(stack.settings)
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


def run(stack: BenchStack, names: list[str], *, count: int = 10_000) -> list[Figure]:
    """Warm ``count`` names both ways; the thread pool gets the same total concurrency."""
    names = names[:count]
    threads = WORKER_PROCESSES * DEFAULT_CONCURRENCY
    baseline = _baseline(stack, names, threads)
    ours, warmed = _through_celery(stack, names)
    ratio = ours / baseline
    trips = _round_trips_per_chunk(stack, names)
    return [
        Figure("warm_through_celery_vs_thread_pool", round(ratio, 3), "x thread-pool throughput",
               f">= {GOAL_RATIO}x", round(baseline, 1), ratio >= GOAL_RATIO,
               {"celery_names_per_s": round(ours, 1), "thread_pool_names_per_s": round(baseline, 1),
                "names": len(names), "warmed": warmed, "concurrency": threads,
                "worker_processes": WORKER_PROCESSES, "threads_per_task": DEFAULT_CONCURRENCY, "chunk": CHUNK}),
        Figure("redis_round_trips_per_warm_chunk", round(trips, 3), "round trips", "== 1", None, trips <= 1.0,
               {"chunk": CHUNK}),
    ]

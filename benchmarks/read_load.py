"""A steady read load for the benchmarks: reader processes of closed-loop threads reading Zipf-drawn names.

Reader processes are spawned (each with threads of its own, as web processes
would be) and read restaurant summaries with ``engine.fetch``, names drawn from
a Zipf distribution over ``names`` in the order given (rank 1 first), as fast
as they can or at a given rate (``Load.rate``). Each
thread counts, per second since a common start, its reads, the hits (answered
from the cache at the first look), the reads that waited for another's fill,
the early refreshes (XFetch) and the reads served from DynamoDB, per band of
popularity too; latencies are kept apart before and after ``Load.split``.

:func:`run_readers` starts them, lets them go together, calls back once a
second (the driver's own sampling or faults) and gathers the counts. Used by
:mod:`benchmarks.bench_cold_cache` and :mod:`benchmarks.bench_warming`.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: What every reader thread counts per second (besides the per-band ``reads:<b>`` and ``hits:<b>``).
COUNTS = ("reads", "hits", "waited", "refreshed", "db", "errors")
#: Backlog (seconds) a paced reader thread may make up after slow reads.
CATCH_UP = 0.5


@dataclass(frozen=True)
class Load:
    """One load: who reads, how names are drawn, for how long."""

    processes: int
    threads: int  # per process
    zipf_s: float
    seconds: int  # how long the readers read
    split: int  # latencies of seconds before this one go to "before", the rest to "after"
    # Upper rank bounds (exclusive of the next band's), e.g. (10, 100): reads and hits are also
    # counted for ranks 1-10, 11-100 and the rest, to see which part of the popularity curve a
    # mechanism helps. Empty: no bands.
    bands: tuple[int, ...] = ()
    # None: the process's engine as the service builds it (XFetch at the engine's default beta).
    xfetch_beta: float | None = None
    # Reads per second over all readers, paced evenly (web traffic arrives at its own rate, so modes that
    # make reads slower must not also make them fewer). None: a closed loop, each thread as fast as it can.
    rate: float | None = None


@dataclass
class Run:
    """What :func:`run_readers` gathered: each process's counts and latencies, and when the clock started."""

    results: list[dict[str, Any]]
    start: float  # wall clock (time.time) of second 0
    mono_start: float  # the same instant on time.monotonic (the DynamoDB proxy's clock)
    seconds: int
    totals: dict[str, Counter[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.totals = {}
        for result in self.results:
            for key, counts in result["counts"].items():
                self.totals.setdefault(key, Counter()).update({int(s): n for s, n in counts.items()})

    def series(self, key: str) -> list[int]:
        """Per-second totals of one count over all processes (0 where nothing was counted)."""
        counts = self.totals.get(key, Counter())
        return [counts[s] for s in range(self.seconds)]

    def latencies(self, which: str) -> list[float]:
        """Every read's latency (ms) ``"before"`` or ``"after"`` the split, all processes together."""
        return [x for r in self.results for x in r[which]]


def zipf_cum_weights(n: int, s: float) -> list[float]:
    """Cumulative Zipf weights of ranks 1..n (``random.choices`` takes them as they are)."""
    total, out = 0.0, []
    for rank in range(1, n + 1):
        total += 1.0 / rank**s
        out.append(total)
    return out


def band_of(rank: int, bands: Sequence[int]) -> int:
    """The index of the band a 1-based rank falls in; ``len(bands)`` for the ranks past the last bound."""
    for index, bound in enumerate(bands):
        if rank <= bound:
            return index
    return len(bands)


def per_second(times: Iterable[float], start: float, seconds: int) -> list[int]:
    """How many of ``times`` fall in each one-second bucket from ``start`` (earlier ones dropped)."""
    counts = Counter(int(t - start) for t in times if t >= start)
    return [counts[s] for s in range(seconds)]


def _engine(env: dict[str, str], beta: float | None) -> Any:
    from cachewarm import service
    from cachewarm.settings import Settings

    settings = Settings.from_env(env)
    if beta is None:
        return service.engine(settings)
    from cachewarm.cache import CacheAside
    from cachewarm.clients import cache_redis

    # Built here, not through service.engine, which has no knob for beta (production keeps the default).
    return CacheAside(cache_redis(settings), service.repository(settings), settings, xfetch_beta=beta)


def _reader(env: dict[str, str], names: list[str], load: Load, seed_value: int, ready: Any, go: Any,
            t0: Any, out: Any) -> None:
    """``load.threads`` closed-loop readers; puts per-second counts and latencies on ``out`` when done."""
    from cachewarm.cache import HIT, REFRESHED, WAITED

    engine = _engine(env, load.xfetch_beta)
    weights = zipf_cum_weights(len(names), load.zipf_s)
    band = [band_of(rank, load.bands) for rank in range(1, len(names) + 1)] if load.bands else []
    ranks = range(len(names))
    per_thread: list[dict[str, Any]] = []

    def loop(index: int) -> None:
        rng = random.Random(seed_value * 1000 + index)
        counts: dict[str, Counter[int]] = {k: Counter() for k in COUNTS}
        for b in range(len(load.bands) + 1 if band else 0):
            counts[f"reads:{b}"], counts[f"hits:{b}"] = Counter(), Counter()
        before: list[float] = []
        after: list[float] = []
        per_thread.append({"counts": counts, "before": before, "after": after})
        engine.fetch(names[0])  # this thread's Redis connection, before the clock starts
        go.wait(120)
        start = t0.value
        end = start + load.seconds
        interval = load.processes * load.threads / load.rate if load.rate else 0.0
        # Staggered, so that the threads do not read in step (no draw in a closed loop: same names as ever).
        due = start + rng.random() * interval if interval else start
        while (now := time.time()) < end:
            if interval:
                if due > now:
                    time.sleep(due - now)
                    now = due
                # A thread held up by a miss (a Query is slower than its interval) catches up, but by at
                # most CATCH_UP seconds of backlog: replayed all at once it would be a burst of its own
                # making. Reads so lost show as a lower reads/s than the rate.
                due = max(due + interval, now - CATCH_UP)
            rank = rng.choices(ranks, cum_weights=weights)[0]
            second = int(now - start)
            try:
                result = engine.fetch(names[rank])
            except Exception:  # counted, not fatal: the figures are about load, and an error is load too
                counts["errors"][second] += 1
                continue
            hit = result.cache == HIT
            counts["reads"][second] += 1
            counts["hits"][second] += hit
            counts["waited"][second] += result.cache == WAITED
            counts["refreshed"][second] += result.cache == REFRESHED
            counts["db"][second] += result.source == "db"
            if band:
                counts[f"reads:{band[rank]}"][second] += 1
                counts[f"hits:{band[rank]}"][second] += hit
            (before if second < load.split else after).append(result.latency_ms)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(load.threads)]
    for thread in threads:
        thread.start()
    ready.wait(120)
    for thread in threads:
        thread.join()
    merged: dict[str, Counter[int]] = {}
    for part in per_thread:
        for key, counter in part["counts"].items():
            merged.setdefault(key, Counter()).update(counter)
    out.put({"pid": os.getpid(), "counts": {k: dict(v) for k, v in merged.items()},
             "before": [x for p in per_thread for x in p["before"]],
             "after": [x for p in per_thread for x in p["after"]]})


def run_readers(env: dict[str, str], names: list[str], load: Load, *,
                on_start: Callable[[float], None] | None = None,
                each_second: Callable[[int], None] | None = None) -> Run:
    """Spawn the readers, start them together, call ``each_second(s)`` at the end of second s (1-based).

    ``on_start(start)`` runs once every reader is connected, just before they go
    (to reset the driver's samplers), with the wall-clock time of second 0.
    Blocks until the readers are done.
    """
    ctx = multiprocessing.get_context("spawn")
    ready, go, t0, out = ctx.Barrier(load.processes + 1), ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    processes = [ctx.Process(target=_reader, args=(env, names, load, seed + 1, ready, go, t0, out), daemon=True)
                 for seed in range(load.processes)]
    for process in processes:
        process.start()
    # Every reader has its clients: ready.wait() returns once each process has started its threads.
    ready.wait(180)
    time.sleep(1.0)  # the threads' first fetch (their Redis connections) is done well within this
    start = time.time() + 0.2
    mono_start = time.monotonic() + (start - time.time())
    t0.value = start
    if on_start is not None:
        on_start(start)
    go.set()
    for second in range(1, load.seconds + 1):
        time.sleep(max(0.0, start + second - time.time()))
        if each_second is not None:
            each_second(second)
    results = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    return Run(results, start, mono_start, load.seconds)

"""A cold cache does not flatten DynamoDB: the whole cache lost under a steady read load, with and without the fill cap.

Reader processes (spawned, each with threads of its own, as web processes would
be) read restaurant summaries in a closed loop with ``engine.fetch``, names
drawn from a Zipf distribution over the seeded restaurants. DynamoDB is dynalite
behind :class:`~devstack.dynamo_proxy.DynamoProxy`, which delays every Query
(a loaded table, so that concurrent reads overlap) and tracks how many are in
flight. The cache starts warm (every name stored by the project's warmer,
:func:`~cachewarm.warming.warm_names`, straight from dynalite); after a steady
warm-up the whole cache is emptied with the project's own SCAN + UNLINK of the
key prefix (:func:`~cachewarm.invalidation.invalidate_all`, what
``invalidate --all`` runs), and the readers carry on.

The same load runs twice, each mode with a key prefix of its own: with the cap
(``CACHE_MAX_FILLS``) and without it (``0``, the baseline). Per second: the
Queries reaching DynamoDB, the most in flight at once, and the hit ratio (reads
answered from the cache at the first look, status ``hit``; a reader that waited
for another's fill counts as a miss). Recovery is the time from the flush until
a one-second bucket's hit ratio is back at 95 %, judged against one warm period
(``WARM_HOT_SCHEDULE``). Writes ``reports/cold_cache.json`` and the plot
``docs/images/cold-cache.png``.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import BenchStack, Figure
from benchmarks.read_load import Load, per_second, run_readers
from benchmarks.read_load import zipf_cum_weights as zipf_cum_weights  # re-exported: its unit test imports it here
from cachewarm.percentiles import describe

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "cold_cache.json"
PLOT = ROOT / "docs" / "images" / "cold-cache.png"
QUICK_PLOT = ROOT / "reports" / "cold-cache-quick.png"  # a smoke run must not replace the README's image
HIT_GOAL = 0.95


@dataclass(frozen=True)
class Plan:
    """The load and its phases; the same for both modes."""

    cap: int = 8  # CACHE_MAX_FILLS of the capped mode
    delay: float = 0.02  # seconds the proxy adds to every Query
    processes: int = 4
    threads: int = 16  # per process
    zipf_s: float = 1.05
    warmup: int = 15  # seconds of steady state before the flush
    observe: int = 75  # seconds after it

    @property
    def seconds(self) -> int:
        """Length of one mode's run."""
        return self.warmup + self.observe

    @property
    def load(self) -> Load:
        """The readers' part of the plan: latencies split at the flush."""
        return Load(self.processes, self.threads, self.zipf_s, self.seconds, split=self.warmup)


QUICK = Plan(processes=2, threads=8, warmup=5, observe=20)


def recovery_seconds(hit_ratio: list[float | None], flush_at: int, goal: float = HIT_GOAL) -> int | None:
    """Seconds from the flush to the end of the first one-second bucket at ``goal`` or above; None if never."""
    for k, ratio in enumerate(hit_ratio[flush_at:]):
        if ratio is not None and ratio >= goal:
            return k + 1  # bucket k covers [k, k + 1) s after the flush: counted to its end
    return None


# -- one mode -----------------------------------------------------------------------------------


def _prewarm(env: dict[str, str], names: list[str]) -> dict[str, Any]:
    """Store every name with the project's warmer, straight from dynalite (not through the proxy)."""
    from cachewarm import service
    from cachewarm.settings import Settings
    from cachewarm.warming import warm_names

    engine = service.engine(Settings.from_env(env))
    t0 = time.perf_counter()
    warmed = 0
    for i in range(0, len(names), 1000):
        warmed += len(warm_names(engine, names[i:i + 1000], concurrency=16).warmed)
    return {"warmed": warmed, "seconds": round(time.perf_counter() - t0, 1)}


def run_mode(stack: BenchStack, names: list[str], plan: Plan, cap: int) -> dict[str, Any]:
    """One run of the load with ``CACHE_MAX_FILLS=cap``: per-second series and latencies."""
    from cachewarm import service
    from cachewarm.invalidation import invalidate_all
    from cachewarm.settings import Settings
    from devstack.dynamo_proxy import DynamoProxy

    base = {**stack.env, "CACHE_MAX_FILLS": str(cap), "CACHE_KEY_PREFIX": f"{stack.env['CACHE_KEY_PREFIX']}cold{cap}"}
    prewarm = _prewarm(base, names)
    with DynamoProxy(stack.dynalite.url, nodelay=True) as proxy:
        proxy.faults.delay["Query"] = plan.delay
        env = {**base, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url}
        flusher = service.engine(Settings.from_env(base))
        peaks: list[int] = []
        flush: dict[str, Any] = {}
        marks: dict[str, int] = {}

        def on_start(_: float) -> None:
            proxy.take_peak("Query")
            marks["queries"] = proxy.counts["Query"]

        def each_second(second: int) -> None:
            peaks.append(proxy.take_peak("Query"))
            if second == plan.warmup:
                began = time.perf_counter()
                flush.update(removed=invalidate_all(flusher), seconds=round(time.perf_counter() - began, 3))

        run = run_readers(env, names, plan.load, on_start=on_start, each_second=each_second)
        arrivals = [t for t, op, _ in proxy.arrivals if op == "Query"]
        peak = proxy.peak_in_flight["Query"]
        queries = proxy.counts["Query"] - marks["queries"]
        busy = proxy.busy_seconds["Query"]
    seconds = range(plan.seconds)
    reads, hits = run.series("reads"), run.series("hits")
    return {
        "cap": cap,
        "prewarm": prewarm,
        "flush": flush,
        "queries": queries,
        # Arrival to answer at the proxy, delay included: what one fill holds its slot for, at least.
        "query_ms_mean": round(1000 * busy / queries, 1) if queries else None,
        "peak_in_flight": peak,
        "series": {
            "second": [s - plan.warmup for s in seconds],  # 0 = the flush
            "dynamodb_reads": per_second(arrivals, run.mono_start, plan.seconds),
            "dynamodb_peak_in_flight": peaks,
            "reads": reads,
            "hit_ratio": [round(h / r, 4) if r else None for h, r in zip(hits, reads, strict=True)],
            "waited": run.series("waited"),
            "db": run.series("db"),
            "errors": run.series("errors"),
        },
        "latency_ms_before": describe(run.latencies("before")),
        "latency_ms_after": describe(run.latencies("after")),
    }


# -- figures ------------------------------------------------------------------------------------


def _summary(mode: dict[str, Any], plan: Plan) -> dict[str, Any]:
    series = mode["series"]
    after = slice(plan.warmup, plan.seconds)
    before = [r for r in series["hit_ratio"][1:plan.warmup] if r is not None]  # the first second has stragglers
    recovered = recovery_seconds(series["hit_ratio"], plan.warmup)
    tail = [r for r in series["hit_ratio"][plan.warmup + (recovered or plan.observe):] if r is not None]
    return {
        "peak_in_flight": mode["peak_in_flight"],
        "peak_reads_per_s": max(series["dynamodb_reads"][after], default=0),
        "dynamodb_reads_after_flush": sum(series["dynamodb_reads"][after]),
        "reads_per_s_mean": round(sum(series["reads"]) / plan.seconds, 1),
        "hit_ratio_before_flush": round(min(before), 4) if before else None,
        "recovery_s": recovered,
        "stayed_above_after_recovery": bool(tail) and min(tail) >= HIT_GOAL,
        "errors": sum(series["errors"]),
    }


def figures(capped: dict[str, Any], uncapped: dict[str, Any], plan: Plan, warm_period: float | None,
            restaurants: int) -> list[Figure]:
    """The figures of one run: each capped value with the uncapped one as its baseline."""
    c, u = _summary(capped, plan), _summary(uncapped, plan)
    bound = plan.cap / plan.delay  # a fill holds its slot for at least the Query's delay
    common = {"restaurants": restaurants, "zipf_s": plan.zipf_s, "readers": f"{plan.processes}x{plan.threads}",
              "query_delay_ms": plan.delay * 1000, "cap": plan.cap, "capped": c, "uncapped": u}
    recovered = c["recovery_s"]
    period = f"{warm_period:.0f} s" if warm_period else "n/a"
    return [
        Figure("cold_cache_dynamodb_in_flight_peak", c["peak_in_flight"], "Queries in flight",
               f"<= {plan.cap} (CACHE_MAX_FILLS)", u["peak_in_flight"], c["peak_in_flight"] <= plan.cap, common),
        Figure("cold_cache_dynamodb_reads_per_s_peak", c["peak_reads_per_s"], "Queries/s",
               f"<= {bound:.0f}/s (cap / {plan.delay * 1000:.0f} ms per Query)", u["peak_reads_per_s"],
               c["peak_reads_per_s"] <= bound, {**common, "bound_per_s": bound}),
        Figure("cold_cache_hit_ratio_95_after_s", recovered if recovered is not None else float(plan.observe), "s",
               f"<= {period} (one warm period)", u["recovery_s"],
               None if warm_period is None else recovered is not None and recovered <= warm_period,
               {**common, "observed_s": plan.observe, "recovered": recovered is not None,
                "warm_period_s": warm_period}),
        Figure("cold_cache_read_p99_after_flush", capped["latency_ms_after"]["p99"], "ms", "n/a (measured)",
               uncapped["latency_ms_after"]["p99"], None,
               {"capped": capped["latency_ms_after"], "uncapped": uncapped["latency_ms_after"],
                "capped_before_flush": capped["latency_ms_before"]}),
    ]


def run(stack: BenchStack, names: list[str], *, quick: bool = False) -> list[Figure]:
    """Both modes on the same load; writes the JSON report and the plot, returns the figures."""
    from benchmarks.cold_cache_plot import plot
    from cachewarm.settings import parse_schedule

    plan = QUICK if quick else Plan()
    ranked = list(names)
    random.Random(14).shuffle(ranked)  # popularity unrelated to the names' order
    capped = run_mode(stack, ranked, plan, plan.cap)
    uncapped = run_mode(stack, ranked, plan, 0)
    schedule = parse_schedule(stack.settings.warm_hot_schedule)
    warm_period = schedule if isinstance(schedule, float) else None
    result = figures(capped, uncapped, plan, warm_period, len(names))
    report = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick,
              "plan": {**asdict(plan), "restaurants": len(names), "warm_period_s": warm_period,
                       "bound_per_s": plan.cap / plan.delay, "hit_goal": HIT_GOAL},
              "modes": {"capped": capped, "uncapped": uncapped},
              "figures": [f.to_dict() for f in result]}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1) + "\n")
    plot(report, QUICK_PLOT if quick else PLOT)
    return result

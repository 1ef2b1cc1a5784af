"""Warming, measured under a steady read load: lazy loading, plus XFetch, plus ``warm_hot`` on its schedule.

The same load runs three times (:mod:`benchmarks.read_load`: reader processes
of closed-loop threads, names drawn from a Zipf distribution over the seeded
restaurants), each mode with a key prefix of its own and a cold cache at its
start. DynamoDB is dynalite behind :class:`~devstack.dynamo_proxy.DynamoProxy`,
which delays every Query so that a miss costs what a loaded table would. The TTL
is short (``CACHE_TTL_SECONDS``, jittered by ``CACHE_TTL_JITTER``) so that every
key expires several times in a run; the first ``warmup`` seconds (longer than one
TTL, so the first fills have expired once) are not measured.

* ``lazy``: cache-aside only (``xfetch_beta=0``): a key is read again from
  DynamoDB by the first read after it expires.
* ``xfetch``: plus XFetch at the engine's default beta (1.0): a read shortly
  before expiry refreshes the key, with a probability that only the hottest
  keys' read rates turn into a near certainty.
* ``warm_hot``: plus what beat's ``warm_hot`` does, run in the driver (what the
  task calls: ``engine.hot.top(K, now)``, then ``warm_names`` in chunks of 100):
  K is ``WARM_HOT_TOP_K`` and the period keeps production's ratio of the
  schedule to the TTL (180 s for 900 s, so 4 s for 20 s). Its Queries go through
  the proxy, and count, like the readers'.

Per second: reads, hit ratio (answered from the cache at the first look; an
XFetch refresh or a wait for another's fill is not a hit), DynamoDB Queries
(readers' and warmer's); per mode, read p50/p99 after the warm-up, and the hit
ratio per band of popularity (ranks 1-10, 11-K, K+1-1000, the rest): which part
of the curve each mechanism reaches. Writes ``reports/warming.json`` and the
plot ``docs/images/warming.png``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import BenchStack, Figure
from benchmarks.read_load import Load, Run, per_second, run_readers
from cachewarm.percentiles import describe

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "warming.json"
PLOT = ROOT / "docs" / "images" / "warming.png"
QUICK_PLOT = ROOT / "reports" / "warming-quick.png"  # a smoke run must not replace the README's image
MODES = {"lazy": 0.0, "xfetch": 1.0, "warm_hot": 1.0}  # mode -> xfetch_beta
CHUNK = 100  # warm_hot's default chunk_size: names per warm_names call


@dataclass(frozen=True)
class Plan:
    """The load and its phases; the same for every mode."""

    delay: float = 0.02  # seconds the proxy adds to every Query
    processes: int = 4
    threads: int = 16  # per process
    zipf_s: float = 1.05
    # Reads/s over all readers, paced: the same load in every mode whatever each costs the CPUs (2 here,
    # shared with Redis, dynalite and the proxy). A first run at 3,000/s fell 5-20 % short, unevenly by
    # mode, on a machine loaded by other work; 1,500/s is held.
    rate: float = 1500.0
    ttl: int = 20  # CACHE_TTL_SECONDS
    jitter: float = 0.1  # CACHE_TTL_JITTER, production's
    warmup: int = 40  # seconds not measured: two TTLs, so the cold start's first expiries are behind us
    measure: int = 100  # seconds measured: five TTLs

    @property
    def seconds(self) -> int:
        """Length of one mode's run."""
        return self.warmup + self.measure

    def load(self, beta: float, bands: tuple[int, ...]) -> Load:
        """The readers' part of the plan, for one mode."""
        return Load(self.processes, self.threads, self.zipf_s, self.seconds, split=self.warmup, bands=bands,
                    xfetch_beta=beta, rate=self.rate)


QUICK = Plan(processes=2, threads=8, rate=800.0, ttl=6, warmup=12, measure=24)


def bands_for(top_k: int) -> tuple[int, ...]:
    """Rank bounds of the popularity bands: XFetch's likely reach, warm_hot's top K, the next ranks, the tail."""
    return tuple(sorted({10, top_k, max(1000, 10 * top_k)}))


def warm_period(ttl: float, schedule: float | None, production_ttl: float) -> float:
    """The warm period of the run: production's schedule-to-TTL ratio applied to the run's TTL."""
    ratio = schedule / production_ttl if schedule else 0.2  # crontab or "off": the shipped 180 s / 900 s
    return round(ttl * ratio, 3)


class Warmer:
    """warm_hot on its schedule, in a thread of the driver: top K names, then ``warm_names`` per chunk."""

    def __init__(self, env: dict[str, str], top_k: int, period: float, concurrency: int):
        from cachewarm import service
        from cachewarm.settings import Settings

        self.engine = service.engine(Settings.from_env(env))
        self.top_k, self.period, self.concurrency = top_k, period, concurrency
        self.runs: list[dict[str, Any]] = []
        self.reads: list[float] = []  # monotonic time of each DynamoDB read a warm made
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, start: float) -> None:
        """Warm every ``period`` seconds from ``start`` (wall clock): beat's first run is one period in."""
        self._thread = threading.Thread(target=self._loop, args=(start,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the warm in progress, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _loop(self, start: float) -> None:
        from cachewarm.batching import chunked
        from cachewarm.warming import warm_names

        due = start + self.period
        while not self._stop.wait(max(0.0, due - time.time())):
            began = time.time()
            self.engine.flush()  # as the task's process would: its own tallies are sent first (it has none)
            names = [name for name, _ in self.engine.hot.top(self.top_k, began)]
            warmed = skipped = 0
            for chunk in chunked(names, CHUNK):
                report = warm_names(self.engine, chunk, concurrency=self.concurrency)
                warmed, skipped = warmed + len(report.warmed), skipped + report.skipped
                self.reads += [time.monotonic()] * report.requested  # at the chunk's end: within its second
            self.runs.append({"at_s": round(began - start, 2), "names": len(names), "warmed": warmed,
                              "skipped": skipped, "seconds": round(time.time() - began, 3)})
            # A warm longer than the period is not queued twice (beat would queue it; the chunks would pile up).
            due = max(due + self.period, time.time())


def run_mode(stack: BenchStack, names: list[str], plan: Plan, mode: str, top_k: int, period: float) -> dict[str, Any]:
    """One run of the load in ``mode`` (a key of MODES): per-second series, latencies, bands."""
    from devstack.dynamo_proxy import DynamoProxy

    env_base = {**stack.env, "CACHE_TTL_SECONDS": str(plan.ttl), "CACHE_TTL_JITTER": str(plan.jitter),
                "CACHE_KEY_PREFIX": f"{stack.env['CACHE_KEY_PREFIX']}w{mode}"}
    bands = bands_for(top_k)
    with DynamoProxy(stack.dynalite.url, nodelay=True) as proxy:
        proxy.faults.delay["Query"] = plan.delay
        env = {**env_base, "AWS_ENDPOINT_URL_DYNAMODB": proxy.url}
        warmer = Warmer(env, top_k, period, stack.settings.warm_concurrency) if mode == "warm_hot" else None
        marks: dict[str, int] = {}

        def on_start(start: float) -> None:
            marks["queries"] = proxy.counts["Query"]
            if warmer is not None:
                warmer.start(start)

        run = run_readers(env, names, plan.load(MODES[mode], bands), on_start=on_start)
        if warmer is not None:
            warmer.stop()
        arrivals = [t for t, op, _ in proxy.arrivals if op == "Query"]
        queries = proxy.counts["Query"] - marks["queries"]
    reads, hits = run.series("reads"), run.series("hits")
    return {
        "mode": mode,
        "xfetch_beta": MODES[mode],
        "queries": queries,
        "series": {
            "second": [s - plan.warmup for s in range(plan.seconds)],  # 0 = measuring starts
            "reads": reads,
            "hits": hits,
            "hit_ratio": [round(h / r, 4) if r else None for h, r in zip(hits, reads, strict=True)],
            "dynamodb_reads": per_second(arrivals, run.mono_start, plan.seconds),
            "warm_reads": per_second(warmer.reads if warmer else [], run.mono_start, plan.seconds),
            "refreshed": run.series("refreshed"),
            "waited": run.series("waited"),
            "db": run.series("db"),
            "errors": run.series("errors"),
        },
        "bands": _bands(run, bands, plan),
        "warms": warmer.runs if warmer else [],
        "latency_ms_warmup": describe(run.latencies("before")),
        "latency_ms": describe(run.latencies("after")),
    }


def _bands(run: Run, bands: tuple[int, ...], plan: Plan) -> list[dict[str, Any]]:
    """Reads, hits and non-hits per second of each popularity band, over the measured seconds."""
    out, low = [], 1
    for index, high in enumerate((*bands, None)):
        reads = sum(run.series(f"reads:{index}")[plan.warmup:])
        hits = sum(run.series(f"hits:{index}")[plan.warmup:])
        out.append({"ranks": f"{low}-{high}" if high else f"{low}-", "reads": reads, "hits": hits,
                    "hit_ratio": round(hits / reads, 5) if reads else None,
                    "non_hits_per_s": round((reads - hits) / plan.measure, 2)})
        low = (high or 0) + 1
    return out


# -- figures ------------------------------------------------------------------------------------


def summary(mode: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """One mode's steady state: the measured seconds only."""
    series, measured = mode["series"], slice(plan.warmup, plan.seconds)
    reads, hits = sum(series["reads"][measured]), sum(series["hits"][measured])
    dynamo = sum(series["dynamodb_reads"][measured])
    worst = [h for h in series["hit_ratio"][measured] if h is not None]
    return {
        "hit_ratio": round(hits / reads, 4) if reads else None,
        "hit_ratio_worst_second": min(worst, default=None),
        "reads_per_s": round(reads / plan.measure, 1),
        "dynamodb_reads_per_s": round(dynamo / plan.measure, 1),
        "dynamodb_reads_per_s_peak": max(series["dynamodb_reads"][measured], default=0),
        "warm_reads_per_s": round(sum(series["warm_reads"][measured]) / plan.measure, 1),
        "dynamodb_reads_per_1k_reads": round(1000 * dynamo / reads, 1) if reads else None,
        "refreshed_per_s": round(sum(series["refreshed"][measured]) / plan.measure, 1),
        "waited_per_s": round(sum(series["waited"][measured]) / plan.measure, 1),
        "read_p50_ms": mode["latency_ms"]["p50"],
        "read_p99_ms": mode["latency_ms"]["p99"],
        "errors": sum(series["errors"]),
        "bands": mode["bands"],
    }


def figures(modes: dict[str, dict[str, Any]], plan: Plan, top_k: int, period: float) -> list[Figure]:
    """The figures of one run, each against lazy loading measured in the same run."""
    lazy, xf, warm = (summary(modes[m], plan) for m in MODES)
    common = {"zipf_s": plan.zipf_s, "readers": f"{plan.processes}x{plan.threads}", "ttl_s": plan.ttl,
              "query_delay_ms": plan.delay * 1000, "top_k": top_k, "warm_period_s": period}
    hottest = lazy["bands"][0]["ranks"]  # ranks 1-10
    top = f"1-{top_k}"

    def band_non_hits(s: dict[str, Any], upto: int) -> float:
        """Non-hit reads per second over ranks 1..upto (bands are cumulative up to a bound)."""
        return round(sum(b["non_hits_per_s"] for b in s["bands"][:bands_for(top_k).index(upto) + 1]), 2)

    def relative(s: dict[str, Any]) -> float:
        """DynamoDB Queries per read, over lazy's: per read, so a mode whose readers fell short of the rate
        is not credited for reading less."""
        base = lazy["dynamodb_reads_per_1k_reads"]
        return round(s["dynamodb_reads_per_1k_reads"] / base, 3) if base else 0.0

    # The warms' own reads, as a share of lazy's DynamoDB reads: all warm_hot may add.
    allowance = round(1 + warm["warm_reads_per_s"] / lazy["dynamodb_reads_per_s"], 3) \
        if lazy["dynamodb_reads_per_s"] else None

    # Goals, from the first full run at a rate the readers held (1,500 reads/s; see the README): XFetch
    # removed 42 % of the hottest ten's non-hits (78 % at 3,000/s: it needs reads within a fill's time of
    # expiry), warm_hot 98 % of the top K's, and neither may cost DynamoDB more than its own reads.
    return [
        Figure("warming_hit_ratio_lazy", lazy["hit_ratio"], "ratio", "n/a (the baseline)", None, None,
               {**common, "lazy": lazy}),
        Figure("warming_hot10_non_hits_per_s_xfetch", band_non_hits(xf, 10), "reads/s",
               f"<= 3/4 of lazy's (ranks {hottest})", band_non_hits(lazy, 10),
               band_non_hits(xf, 10) <= 0.75 * band_non_hits(lazy, 10), {**common, "xfetch": xf}),
        Figure("warming_dynamodb_reads_xfetch_vs_lazy", relative(xf), "x lazy (Queries per read)",
               "<= 1.05 (refreshes replace misses)", lazy["dynamodb_reads_per_1k_reads"], relative(xf) <= 1.05,
               {**common, "per_1k_reads": {"lazy": lazy["dynamodb_reads_per_1k_reads"],
                                           "xfetch": xf["dynamodb_reads_per_1k_reads"]}}),
        Figure("warming_topk_non_hits_per_s_warm_hot", band_non_hits(warm, top_k), "reads/s",
               f"<= 1/10 of lazy's (ranks {top})", band_non_hits(lazy, top_k),
               band_non_hits(warm, top_k) <= 0.1 * band_non_hits(lazy, top_k), {**common, "warm_hot": warm}),
        Figure("warming_hit_ratio_warm_hot", warm["hit_ratio"], "ratio", ">= lazy's", lazy["hit_ratio"],
               warm["hit_ratio"] >= lazy["hit_ratio"], common),
        Figure("warming_dynamodb_reads_warm_hot_vs_lazy", relative(warm), "x lazy (Queries per read)",
               f"<= 1 + warms' reads / lazy's = {allowance} (the warms' reads, no more)",
               lazy["dynamodb_reads_per_1k_reads"], None if allowance is None else relative(warm) <= allowance,
               {**common, "warm_reads_per_s": warm["warm_reads_per_s"],
                "per_1k_reads": {"lazy": lazy["dynamodb_reads_per_1k_reads"],
                                 "warm_hot": warm["dynamodb_reads_per_1k_reads"]}}),
        Figure("warming_read_p99_warm_hot", warm["read_p99_ms"], "ms", "n/a (measured)", lazy["read_p99_ms"], None,
               {m: {"p50": s["read_p50_ms"], "p99": s["read_p99_ms"]}
                for m, s in zip(MODES, (lazy, xf, warm), strict=True)}),
    ]


def run(stack: BenchStack, names: list[str], *, quick: bool = False) -> list[Figure]:
    """The three modes on the same load; writes the JSON report and the plot, returns the figures."""
    from benchmarks.warming_plot import plot
    from cachewarm.settings import parse_schedule

    plan = QUICK if quick else Plan()
    settings = stack.settings
    schedule = parse_schedule(settings.warm_hot_schedule)
    period = warm_period(plan.ttl, schedule if isinstance(schedule, float) else None, settings.cache_ttl)
    top_k = settings.warm_hot_top_k
    ranked = list(names)
    random.Random(16).shuffle(ranked)  # popularity unrelated to the names' order
    modes = {}
    for mode in MODES:
        print(f"  warming: {mode} ...", flush=True)
        modes[mode] = run_mode(stack, ranked, plan, mode, top_k, period)
    result = figures(modes, plan, top_k, period)
    report = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick,
              "plan": {**asdict(plan), "restaurants": len(names), "top_k": top_k, "warm_period_s": period,
                       "bands": bands_for(top_k), "chunk": CHUNK},
              "summary": {m: summary(data, plan) for m, data in modes.items()},
              "modes": modes,
              "figures": [f.to_dict() for f in result]}
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1) + "\n")
    plot(report, QUICK_PLOT if quick else PLOT)
    return result

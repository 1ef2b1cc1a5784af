"""What one cache shard serves on this machine, what the broker node serves: the figures behind "N shards".

* Hits: P reader processes (spawned, as web processes would be) each read every
  stored summary in turn, in a closed loop of ``engine.fetch`` (read tallies and
  all), for a fixed time; hits/s, hit latency, and the redis-server's own CPU over
  the same window (INFO cpu, ``used_cpu_sys + used_cpu_user``). A Redis primary runs
  commands on one thread, so it saturates at one core: hits/s ÷ its CPU fraction
  estimates the shard's ceiling. The readers share the machine's cores with the
  server, so the measured rate is this machine's limit, the ceiling an extrapolation.
  The same load then runs against a local 3-primary Redis Cluster
  (``CACHE_REDIS_MODE=cluster``): what cluster mode costs the client.
* Memory: allocated memory (less client buffers) before and after storing every seeded summary with the
  project's WARM script (TTLs and all) under a fresh key prefix, per summary key;
  the values' mean STRLEN and the MEMORY USAGE of a sample of keys.
* Broker (always one standalone node): P clients, each in a closed loop of LPUSH of
  a ~1 KB message and BRPOP (kombu's publish and consume), and the same with the
  rest of a Celery task's broker traffic: kombu's unacked bookkeeping on delivery
  and on ack, the result backend's SETEX + PUBLISH.

Writes ``reports/shard.json`` (raw numbers and the N-shard projection).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.common import BenchStack, Figure
from cachewarm.percentiles import describe

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "shard.json"
MEASURED = "n/a (measured)"


@dataclass(frozen=True)
class Plan:
    """Sizes and durations; the same load for the standalone server and the cluster."""

    readers: tuple[int, ...] = (1, 2, 4)
    seconds: float = 8.0  # per reader count
    broker_clients: tuple[int, ...] = (1, 2, 4)
    broker_seconds: float = 5.0
    message_bytes: int = 1024  # a Celery task message, body and headers, is a few hundred bytes to ~2 KB
    result_bytes: int = 200
    warm_chunk: int = 100  # names per warm_names task (warm_hot's chunk_size)
    load_chunk: int = 5_000  # lines per load_chunk task (workers.fanout.CHUNK_LINES)
    # The machine is shared with other processes: each point is the better of this many runs.
    repeats: int = 2


QUICK = Plan(readers=(1, 2), seconds=3.0, broker_clients=(1, 2), broker_seconds=2.0, repeats=1)


# -- pure helpers -------------------------------------------------------------------------------


def cpu_seconds(info: Mapping[str, Any]) -> float:
    """A server's CPU time so far, from INFO cpu: system plus user (its main thread does both)."""
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def machine_busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores busy between two ``(busy, total)`` jiffy readings of /proc/stat's ``cpu`` line (every process)."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return round((os.cpu_count() or 1) * busy / total, 3) if total > 0 else 0.0


def _jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores so far; idle and iowait are the idle part."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:  # not Linux: no machine-wide figure
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def ceiling(rate: float, cpu_fraction: float) -> float | None:
    """The rate at one full core, for a single-threaded server that used ``cpu_fraction`` of one at ``rate``."""
    return round(rate / cpu_fraction, 1) if cpu_fraction > 0 else None


def projection(per_shard_hits: float, bytes_per_summary: float, broker_tasks: float, plan: Plan,
               *, summaries: int = 1_000_000, shards: tuple[int, ...] = (1, 3, 6)) -> dict[str, Any]:
    """What N shards serve and hold, and where the broker's ceiling sits in warm and load terms."""
    return {
        "hits_per_s_by_shards": {str(n): round(n * per_shard_hits) for n in shards},
        "summaries": summaries,
        "mb_per_shard_by_shards": {str(n): round(summaries / n * bytes_per_summary / 1e6, 1) for n in shards},
        "broker_tasks_per_s": round(broker_tasks),
        "warm_names_per_s_at_broker_limit": round(broker_tasks * plan.warm_chunk),
        "load_lines_per_s_at_broker_limit": round(broker_tasks * plan.load_chunk),
    }


# -- the shard's load ---------------------------------------------------------------------------


def _reader(index: int, ready: Any, go: Any, t0: Any, out: Any, env: dict[str, str], names: list[str],
            seconds: float) -> None:
    """Closed loop of ``engine.fetch`` over ``names`` (from a shuffled start) from ``t0`` for ``seconds``."""
    from cachewarm import service
    from cachewarm.settings import Settings

    engine = service.engine(Settings.from_env(env))
    order = list(names)
    random.Random(index).shuffle(order)
    for name in order[:200]:  # connections and scripts ready before the clock starts
        engine.fetch(name)
    ready.wait(180)
    go.wait(180)
    time.sleep(max(0.0, t0.value - time.time()))
    end = time.perf_counter() + seconds
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    cpu = time.process_time()
    i, n = 0, len(order)
    while (started := time.perf_counter()) < end:
        result = engine.fetch(order[i % n])
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[result.cache] += 1
        i += 1
    out.put({"statuses": dict(statuses), "latencies": latencies, "cpu_s": time.process_time() - cpu})


def _broker_client(index: int, ready: Any, go: Any, t0: Any, out: Any, url: str, plan: Plan, task: bool) -> None:
    """Closed loop of LPUSH + BRPOP on one queue; with ``task``, a Celery task's other broker commands too."""
    import redis

    client = redis.Redis.from_url(url, protocol=3)
    queue, unacked, index_key = "shardbench:queue", "shardbench:unacked", "shardbench:unacked_index"
    message, result = b"m" * plan.message_bytes, b"r" * plan.result_bytes

    def cycle(i: int) -> None:
        client.lpush(queue, message)
        client.brpop([queue], timeout=5)
        if task:  # kombu's QoS.append and QoS.ack (MULTI pipelines), then Celery's Redis result backend
            tag = f"{index}-{i}"
            meta = f"shardbench:celery-task-meta-{tag}"
            pipe: Any = client.pipeline  # MULTI/EXEC pipelines, as kombu's and Celery's are (Any: chained calls)
            pipe().zadd(index_key, {tag: time.time()}).hset(unacked, tag, message).execute()
            pipe().zrem(index_key, tag).hdel(unacked, tag).execute()
            pipe().setex(meta, 60, result).publish(meta, result).execute()

    for i in range(50):
        cycle(-i - 1)
    ready.wait(180)
    go.wait(180)
    time.sleep(max(0.0, t0.value - time.time()))
    end = time.perf_counter() + plan.broker_seconds
    done, cpu = 0, time.process_time()
    while time.perf_counter() < end:
        cycle(done)
        done += 1
    out.put({"cycles": done, "cpu_s": time.process_time() - cpu})


def _measure(target: Callable[..., None], args: tuple[Any, ...], processes: int, seconds: float,
             ports: list[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run ``processes`` copies of ``target(index, ready, go, t0, out, *args)`` in step, for ``seconds`` from ``t0``.

    Returns what each put on ``out``, and the servers' (``ports``) CPU and commands over the same window.
    """
    import redis

    ctx = multiprocessing.get_context("spawn")
    ready, go, t0, out = ctx.Barrier(processes + 1), ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    procs = [ctx.Process(target=target, args=(i, ready, go, t0, out, *args), daemon=True) for i in range(processes)]
    for proc in procs:
        proc.start()
    ready.wait(180)
    nodes = [redis.Redis(port=port, socket_timeout=10) for port in ports]
    start = time.time() + 0.3
    t0.value = start
    go.set()
    time.sleep(max(0.0, start - time.time()))
    jiffies = _jiffies()
    cpu0 = [cpu_seconds(node.info("cpu")) for node in nodes]
    cmd0 = [int(node.info("stats")["total_commands_processed"]) for node in nodes]
    time.sleep(seconds)
    cpu = [cpu_seconds(node.info("cpu")) - c for node, c in zip(nodes, cpu0, strict=True)]
    cmds = [int(node.info("stats")["total_commands_processed"]) - c for node, c in zip(nodes, cmd0, strict=True)]
    busy = machine_busy(jiffies, _jiffies())
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    server = {"cpu_fraction_per_node": [round(c / seconds, 3) for c in cpu],
              "cpu_fraction": round(sum(cpu) / seconds, 3),  # summed over the nodes: cores busy
              "commands_per_s": round(sum(cmds) / seconds),
              "client_cpu_fraction": round(sum(r["cpu_s"] for r in results) / seconds, 3)}
    # The machine is shared: what other processes took of its cores in the window (ours: clients + servers).
    server["machine_busy_cores"] = busy
    server["others_cores"] = round(max(0.0, busy - server["cpu_fraction"] - server["client_cpu_fraction"]), 3)
    return results, server


def best_of(repeats: int, measure: Callable[[], dict[str, Any]], rate: str) -> dict[str, Any]:
    """The run with the highest ``rate`` of ``repeats`` (others' load on the machine only ever lowers it)."""
    runs = [measure() for _ in range(max(1, repeats))]
    return {**max(runs, key=lambda r: r[rate]), "repeats": [r[rate] for r in runs]}


def run_hits(env: dict[str, str], names: list[str], processes: int, plan: Plan, ports: list[int]) -> dict[str, Any]:
    """One reader count's hit load, once: hits/s, latency, client and server CPU."""
    results, server = _measure(_reader, (env, names, plan.seconds), processes, plan.seconds, ports)
    statuses: Counter[str] = Counter()
    for r in results:
        statuses.update(r["statuses"])
    hits = statuses["hit"] / plan.seconds
    return {
        "readers": processes,
        "hits_per_s": round(hits, 1),
        "hits_per_s_per_reader": round(hits / processes, 1),
        "statuses": dict(statuses),
        "latency_ms": describe(x for r in results for x in r["latencies"]),
        **server,
        "commands_per_hit": round(server["commands_per_s"] / hits, 3) if hits else None,
        # Per node: on a cluster the load is spread, and each primary saturates at its own core.
        "ceiling_hits_per_s": ceiling(hits, server["cpu_fraction"]),
    }


def run_broker(url: str, port: int, clients: int, plan: Plan, task: bool) -> dict[str, Any]:
    """One client count's broker loop on the node at ``url``: cycles/s and the server's CPU."""
    results, server = _measure(_broker_client, (url, plan, task), clients, plan.broker_seconds, [port])
    rate = sum(r["cycles"] for r in results) / plan.broker_seconds
    return {"clients": clients, "mode": "task" if task else "lpush_brpop", "per_s": round(rate, 1), **server,
            "ceiling_per_s": ceiling(rate, server["cpu_fraction"])}


# -- memory -------------------------------------------------------------------------------------


def read_summaries(stack: BenchStack, names: list[str]) -> list[tuple[str, Any, float]]:
    """Every name's summary from DynamoDB, once: the same entries go to the standalone server and the cluster."""
    from cachewarm import service

    repo = service.repository(stack.settings)

    def read(name: str) -> tuple[str, Any, float]:
        t0 = time.perf_counter()
        return name, repo.get_summary(name), time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(read, names))


def _dataset_memory(node: Any) -> int:
    """Allocated bytes minus the clients' buffers: a 1,000-call pipeline's query buffer is freed lazily."""
    stats = node.memory_stats()
    return int(stats["total.allocated"]) - int(stats.get("clients.normal", 0))


def store(env: dict[str, str], summaries: list[tuple[str, Any, float]], ports: list[int]) -> dict[str, Any]:
    """Store the summaries with the project's WARM script; the memory it took, per summary key."""
    import redis

    from cachewarm import service
    from cachewarm.settings import Settings

    engine = service.engine(Settings.from_env(env))
    nodes = [redis.Redis(port=port, socket_timeout=10) for port in ports]
    before = sum(_dataset_memory(node) for node in nodes)
    stored = sum(engine.store_many(summaries[i:i + 1000]) for i in range(0, len(summaries), 1000))
    after = sum(_dataset_memory(node) for node in nodes)
    pattern = engine.keys.summary_pattern()
    per_node = [list(node.scan_iter(match=pattern, count=1000)) for node in nodes]
    keys = [(node, key) for node, found in zip(nodes, per_node, strict=True) for key in found]
    sizes = [node.strlen(key) for node, key in keys]
    sample = random.Random(3).sample(keys, min(500, len(keys)))
    usage = [int(node.memory_usage(key, samples=0) or 0) for node, key in sample]
    with_ttl = sum(1 for node, key in sample if int(node.pttl(key)) > 0)
    return {
        "stored": stored, "summary_keys": len(keys), "keys_per_node": [len(found) for found in per_node],
        "allocated_delta": after - before,
        "bytes_per_summary": round((after - before) / len(keys), 1) if keys else None,
        "value_bytes_mean": round(sum(sizes) / len(sizes), 1) if sizes else None,
        "memory_usage_mean": round(sum(usage) / len(usage), 1) if usage else None,
        "sample_with_ttl": f"{with_ttl}/{len(sample)}",
    }


# -- figures ------------------------------------------------------------------------------------


def _best(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return max(runs, key=lambda r: r[key])


def figures(result: dict[str, Any]) -> list[Figure]:
    """The report's figures from one run's raw numbers (``result`` as written to reports/shard.json)."""
    standalone, cluster = result["standalone"], result["cluster"]
    best = _best(standalone, "hits_per_s")
    # The least extrapolated estimate: the run in which redis-server used most of its core.
    busiest = _best(standalone, "cpu_fraction")
    one, one_cluster = standalone[0], cluster[0]
    memory, pairs, tasks = result["memory"], result["broker"]["lpush_brpop"], result["broker"]["task"]
    best_pairs, best_tasks = _best(pairs, "per_s"), _best(tasks, "per_s")
    cpus = os.cpu_count()
    runs = {"standalone": standalone, "cluster": cluster}
    return [
        Figure("shard_hits_per_s", best["hits_per_s"], "hits/s", f"{MEASURED}: {cpus} CPUs shared by readers "
               "and redis-server", None, None,
               {"readers": best["readers"], "latency_ms": best["latency_ms"], "runs": standalone}),
        Figure("shard_redis_cpu_fraction", busiest["cpu_fraction"], "of one core", MEASURED, None, None,
               {"readers": busiest["readers"], "hits_per_s": busiest["hits_per_s"],
                "reader_cpu_fraction": busiest["client_cpu_fraction"],
                "machine_busy_cores": busiest["machine_busy_cores"], "others_cores": busiest["others_cores"],
                "commands_per_hit": busiest["commands_per_hit"]}),
        Figure("shard_hit_ceiling_per_s", busiest["ceiling_hits_per_s"] or 0.0, "hits/s at one core",
               "n/a (estimate: hits/s ÷ redis-server CPU fraction)", best["hits_per_s"], None,
               {"readers": busiest["readers"],
                "by_readers": {r["readers"]: r["ceiling_hits_per_s"] for r in standalone},
                "projection": result["projection"]}),
        Figure("shard_bytes_per_summary", memory["bytes_per_summary"] or 0.0, "bytes", MEASURED,
               memory["value_bytes_mean"], None, memory),
        Figure("cluster_vs_standalone_hits_per_s", round(one_cluster["hits_per_s"] / one["hits_per_s"], 3),
               "x standalone hits/s (1 reader)", MEASURED, one["hits_per_s"], None,
               {"by_readers": {s["readers"]: [s["hits_per_s"], c["hits_per_s"]]
                               for s, c in zip(standalone, cluster, strict=True)}, "runs": runs}),
        Figure("cluster_vs_standalone_hit_p50", round(one_cluster["latency_ms"]["p50"] / one["latency_ms"]["p50"], 3),
               "x standalone p50 (1 reader)", MEASURED, one["latency_ms"]["p50"], None,
               {"cluster_p50_ms": one_cluster["latency_ms"]["p50"], "standalone_p50_ms": one["latency_ms"]["p50"],
                "by_readers_p50_ms": {s["readers"]: [s["latency_ms"]["p50"], c["latency_ms"]["p50"]]
                                      for s, c in zip(standalone, cluster, strict=True)}}),
        Figure("broker_lpush_brpop_per_s", best_pairs["per_s"], "messages/s (LPUSH+BRPOP of 1 KB)", MEASURED,
               None, None, {"best": best_pairs, "runs": pairs}),
        Figure("broker_task_cycles_per_s", best_tasks["per_s"], "tasks/s (broker + result backend commands)",
               MEASURED, best_pairs["per_s"], None, {"best": best_tasks, "runs": tasks}),
    ]


def run(stack: BenchStack, names: list[str], *, quick: bool = False) -> list[Figure]:
    """Memory, hits on one node and on a 3-primary cluster, the broker; writes reports/shard.json."""
    from devstack.redis_cluster import LocalCluster

    plan = QUICK if quick else Plan()
    redis_port = int(stack.redis.url.rsplit(":", 1)[1].split("/")[0])
    summaries = read_summaries(stack, names)
    env = {**stack.env, "CACHE_KEY_PREFIX": f"{stack.env['CACHE_KEY_PREFIX']}shard"}
    memory = store(env, summaries, [redis_port])
    standalone = [best_of(plan.repeats, partial(run_hits, env, names, p, plan, [redis_port]), "hits_per_s")
                  for p in plan.readers]
    cluster = LocalCluster(stack.workdir / "shard-cluster").start()
    try:
        cluster_env = {**env, "CACHE_REDIS_URL": cluster.url, "CACHE_REDIS_MODE": "cluster"}
        cluster_memory = store(cluster_env, summaries, cluster.ports)
        clustered = [best_of(plan.repeats, partial(run_hits, cluster_env, names, p, plan, cluster.ports),
                             "hits_per_s") for p in plan.readers]
    finally:
        cluster.stop()
    broker = {mode: [best_of(plan.repeats, partial(run_broker, stack.redis.url, redis_port, c, plan, mode == "task"),
                             "per_s") for c in plan.broker_clients] for mode in ("lpush_brpop", "task")}
    busiest = _best(standalone, "cpu_fraction")
    best_tasks = _best(broker["task"], "per_s")
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick, "cpus": os.cpu_count(),
        "plan": asdict(plan), "summaries": len(names), "memory": memory, "cluster_memory": cluster_memory,
        "standalone": standalone, "cluster": clustered, "broker": broker,
        "projection": projection(busiest["ceiling_hits_per_s"] or 0.0, memory["bytes_per_summary"] or 0.0,
                                 best_tasks["ceiling_per_s"] or 0.0, plan),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(result, indent=1) + "\n")
    return figures(result)

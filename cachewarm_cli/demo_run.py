"""``make demo``: the whole system on the embedded local stack, start to finish.

Starts what is missing (redis-server, dynalite), generates and loads sample data
made by the project, reads every restaurant twice (DynamoDB, then cache), starts
a real celery worker and beat, warms through the worker, runs the benchmark task
through the worker, prints the results and the plot's path, and stops exactly
what it started.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cachewarm import reset as core_reset
from devstack.localstack import RUN_DIR, LocalStack, start_process, wait_for_log

DEMO_DIR = RUN_DIR / "demo"


def latency_table(title: str, rows: dict[str, list[float]]) -> Table:
    """p50/p90/p99/mean/max per row of millisecond samples."""
    from cachewarm.benchmark import describe

    table = Table("read", "n", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms", title=title)
    for label, values in rows.items():
        s = describe(values)
        table.add_row(label, str(s["n"]), *(f"{s[k]:.3f}" for k in ("p50", "p90", "p99", "mean", "max")))
    return table


def run_demo(console: Console, *, restaurants: int = 300, sample: int = 50, seed: int = 42) -> int:
    """Run the demo; returns the process exit code."""
    from cachewarm_cli.stack import stack_environ

    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    stack = LocalStack.start()
    processes = []
    saved_env = dict(os.environ)
    try:
        env = stack_environ(stack.env)
        os.environ.update(stack.env)
        core_reset()
        for service in stack.started:
            console.print(f"[green]started[/] {service.name} at {service.url}")
        for reused in stack.reused:
            console.print(f"[green]reusing[/] {reused}")

        from cachewarm import service as core
        from cachewarm.settings import get_settings

        settings = get_settings()
        repo = core.repository(settings)
        console.rule("1. table and data")
        created = repo.create_table()
        console.print(f"table {settings.table_name} {'created' if created else 'already exists'} (ACTIVE)")
        names = _load_sample_data(console, settings, restaurants=restaurants, seed=seed)

        console.rule("2. cache-aside: every restaurant read twice")
        engine = core.engine(settings)
        from cachewarm.invalidation import invalidate_all

        invalidate_all(engine)  # start cold, so the first read really goes to DynamoDB
        first, second = [], []
        sources = {"first": set(), "second": set()}
        for name in names:
            a = engine.fetch(name)
            b = engine.fetch(name)
            first.append(a.latency_ms)
            second.append(b.latency_ms)
            sources["first"].add(a.source)
            sources["second"].add(b.source)
        console.print(latency_table(
            f"{len(names)} restaurants: first read vs second read",
            {f"1st read ({'/'.join(sorted(sources['first']))})": first,
             f"2nd read ({'/'.join(sorted(sources['second']))})": second},
        ))

        console.rule("3. celery worker and beat")
        bin_dir = Path(sys.executable).parent
        worker = start_process("demo-worker", [str(bin_dir / "celery"), "-A", "workers", "worker",
                                               "--loglevel=INFO", "--concurrency=2"], DEMO_DIR, env)
        processes.append(worker)
        beat = start_process("demo-beat", [str(bin_dir / "celery"), "-A", "workers", "beat", "--loglevel=INFO"],
                             DEMO_DIR, env)
        processes.append(beat)
        wait_for_log(worker, "ready.", timeout=90)
        wait_for_log(beat, "beat: Starting", timeout=60)
        console.print(f"worker ready (log {worker.log_path}); beat running (log {beat.log_path})")

        console.rule("4. warm through the worker")
        invalidate_all(engine)
        from cachewarm.batching import chunked
        from workers import app as celery_app

        t0 = time.perf_counter()
        results = [celery_app.send_task("cachewarm.warm_names", args=[chunk]) for chunk in chunked(names, 100)]
        warmed = sum(len(r.get(timeout=300)["warmed"]) for r in results)
        elapsed = time.perf_counter() - t0
        hits = sum(engine.fetch(n).source == "cache" for n in names)
        console.print(f"warmed {warmed} summaries in {elapsed:.2f}s through cachewarm.warm_names; "
                      f"then {hits}/{len(names)} reads were cache hits")

        console.rule("5. benchmark through the worker (cachewarm.run_benchmark)")
        from cachewarm.bench_store import BenchmarkStore
        from cachewarm_cli.bench import results_table
        from cachewarm_cli.plot import plot_run

        summary = celery_app.send_task("cachewarm.run_benchmark", kwargs={"sample": sample}).get(timeout=600)
        run = BenchmarkStore(repo).get(summary["run_id"])
        console.print(results_table(run))
        plot = plot_run(run, DEMO_DIR / "benchmark.png")
        console.print(f"plot: {plot}")
        console.print(f"stored durably in DynamoDB: cachewarm bench show {run['run_id']}")
        return 0
    finally:
        for process in reversed(processes):
            process.stop(timeout=30)
        stack.stop()
        os.environ.clear()
        os.environ.update(saved_env)
        console.rule("stopped everything the demo started")


def _load_sample_data(console: Console, settings, *, restaurants: int, seed: int) -> list[str]:
    import json

    from loaders import load_file
    from loaders.generate import generate_file

    path = DEMO_DIR / f"sample-{restaurants}-seed{seed}.jsonl"
    lines = generate_file(path, restaurants=restaurants, seed=seed)
    report = load_file(path, settings=settings)
    console.print(f"generated {lines} lines into {path}; loaded {report.written}, rejected {report.rejected}")
    names = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            item = json.loads(line)
            if item["PK"] == item["SK"]:
                names.append(item["name"])
    return names

"""``cachewarm demo`` (``make demo``): the whole system on the embedded local stack, start to finish.

Starts what is missing (redis-server, dynalite), generates and loads sample data
made by the project, reads every restaurant twice (DynamoDB, then cache), starts
a real celery worker, beat and change feed (``cachewarm feed follow``), writes
straight to the table as another application would and times how soon ``get``
shows each write (:mod:`cachewarm_cli.demo_feed`), warms through the worker,
runs the benchmark task through the worker, prints the results and the plot's
path, and stops exactly what it started. The dev stack is imported when the demo
runs, not when the console script starts.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cachewarm_cli.output import console as stdout_console

app = typer.Typer()


@app.command("demo")
def demo(
    restaurants: int = typer.Option(300, min=5, help="Restaurants to generate."),
    sample: int = typer.Option(50, min=1, help="Restaurants the benchmark samples."),
    seed: int = typer.Option(42, help="Generator seed."),
) -> None:
    """Run the whole system on the embedded local stack, then stop what it started."""
    raise typer.Exit(run_demo(stdout_console, restaurants=restaurants, sample=sample, seed=seed))


def _demo_dir() -> Path:
    """Where the demo keeps its sample data, logs and plot (under the dev stack's run directory)."""
    from devstack.localstack import RUN_DIR

    return RUN_DIR / "demo"


def latency_table(title: str, rows: dict[str, list[float]]) -> Table:
    """p50/p90/p99/mean/max per row of millisecond samples."""
    from cachewarm.percentiles import describe

    table = Table("read", "n", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms", title=title)
    for label, values in rows.items():
        s = describe(values)
        table.add_row(label, str(s["n"]), *(f"{s[k]:.3f}" for k in ("p50", "p90", "p99", "mean", "max")))
    return table


def run_demo(console: Console, *, restaurants: int = 300, sample: int = 50, seed: int = 42) -> int:
    """Run the demo; returns the process exit code."""
    from cachewarm import reset as core_reset
    from cachewarm_cli.demo_feed import run_feed_step, start_follower
    from cachewarm_cli.stack import stack_environ
    from devstack.localstack import LocalStack, start_process, wait_for_log

    demo_dir = _demo_dir()
    demo_dir.mkdir(parents=True, exist_ok=True)
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
        names = _load_sample_data(console, settings, demo_dir, restaurants=restaurants, seed=seed)

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

        console.rule("3. celery worker, beat and the change feed")
        bin_dir = Path(sys.executable).parent
        worker = start_process("demo-worker", [str(bin_dir / "celery"), "-A", "workers", "worker",
                                               "--loglevel=INFO", "--concurrency=2"], demo_dir, env)
        processes.append(worker)
        beat = start_process("demo-beat", [str(bin_dir / "celery"), "-A", "workers", "beat", "--loglevel=INFO"],
                             demo_dir, env)
        processes.append(beat)
        feed = start_follower(demo_dir, env)  # the Procfile's feed process: cachewarm feed follow
        processes.append(feed)
        wait_for_log(worker, "ready.", timeout=90)
        wait_for_log(beat, "beat: Starting", timeout=60)
        console.print(f"worker ready (log {worker.log_path}); beat running (log {beat.log_path}); "
                      f"change feed following the table's stream (log {feed.log_path})")

        console.rule("4. change feed: another application writes straight to the table")
        if run_feed_step(console, engine, repo, names[0], feed):
            return 1

        console.rule("5. warm through the worker")
        invalidate_all(engine)
        from cachewarm.batching import chunked
        from cachewarm_cli.warm import CHUNK, collect
        from workers import app as celery_app

        t0 = time.perf_counter()
        results = [celery_app.send_task("cachewarm.warm_names", args=[chunk]) for chunk in chunked(names, CHUNK)]
        warmed = len(collect(results, timeout=300)[0])
        elapsed = time.perf_counter() - t0
        hits = sum(engine.fetch(n).source == "cache" for n in names)
        console.print(f"warmed {warmed} summaries in {elapsed:.2f}s through cachewarm.warm_names; "
                      f"then {hits}/{len(names)} reads were cache hits")

        console.rule("6. benchmark through the worker (cachewarm.run_benchmark)")
        from cachewarm.bench_store import BenchmarkStore
        from cachewarm_cli.bench import TASK, follow_run, results_table
        from cachewarm_cli.plot import plot_run

        summary = follow_run(celery_app.send_task(TASK, kwargs={"sample": sample}), 600, quiet=True)
        run = BenchmarkStore(repo).get(summary["run_id"])
        console.print(results_table(run))
        plot = plot_run(run, demo_dir / "benchmark.png")
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


def _load_sample_data(console: Console, settings, demo_dir: Path, *, restaurants: int, seed: int) -> list[str]:
    import json

    from loaders import load_file
    from loaders.generate import generate_file

    path = demo_dir / f"sample-{restaurants}-seed{seed}.jsonl"
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

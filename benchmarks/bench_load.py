"""Bulk load: ``cachewarm load`` vs the original demo's loop, on the same dynalite, in the same run.

The original read the whole file into a list and pushed it through one boto3
``table.batch_writer()``. Ours streams, validates, and writes 25-item batches
from several writers (plus write-around invalidation against a real Redis).

Measured, each in a fresh subprocess so that ``ru_maxrss`` is its own:

1. ``compare``: the same generated file of at least 200k items (20k with
   ``--quick``), the original loop first, then ``loaders.load_file`` with its
   defaults, each into its own table. Goal: ours >= 1.4x the original's items/s.
2. ``modes``: threads vs processes on a 50k-line prefix (1 writer process with
   4 or 8 threads; 2 or 3 processes with 4 threads each), each with its peak
   memory: the evidence for ``DEFAULT_WORKERS`` in loaders/pipeline.py.
3. ``memory``: peak resident memory of ``load_file`` on a 1M-line file (100k
   with ``--quick``): the loader process's ``ru_maxrss`` plus, for each writer
   process, the largest child's (an upper bound: shared pages count twice).
   Goal: under 200 MB.

The dynalite is started here, persisting to disk as ``cachewarm stack up``
runs it, with a private redis-server; never the machine's Redis on 6379.
Writes ``reports/bench_load.json``. Run: ``python -m benchmarks.bench_load [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "bench_load.json"
GOAL_RATIO = 1.4
GOAL_PEAK_MB = 200.0
REVIEWS_PER_RESTAURANT = 20
MODES = ((1, 4), (1, 8), (2, 4), (3, 4))


def _size(quick: bool) -> dict[str, int]:
    return {"compare": 20_000 if quick else 200_000, "modes": 10_000 if quick else 50_000,
            "memory": 100_000 if quick else 1_000_000}


# -- what runs in a child process ----------------------------------------------------------


def _rusage_mb() -> tuple[float, float]:
    """getrusage's ru_maxrss for this process and for its largest finished child, in MB.

    On Linux ru_maxrss survives execve: a process reports at least the size its
    parent had when it forked. The driver below stays small for that reason,
    and the figures that judge the goal come from /proc's VmHWM instead.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(child, 1)


def _child_generate(path: str, lines: int, seed: int) -> dict[str, Any]:
    """Generate at least ``lines`` lines (in a child, so the driver stays small)."""
    from loaders.generate import generate_file

    restaurants = max(1, lines // (REVIEWS_PER_RESTAURANT + 1))
    while True:
        made = generate_file(path, restaurants=restaurants, reviews_per_restaurant=REVIEWS_PER_RESTAURANT,
                             seed=seed)
        if made >= lines:
            return {"lines": made, "file_bytes": os.path.getsize(path)}
        restaurants = int(restaurants * lines / made * 1.02) + 1


def _child_create_table() -> dict[str, Any]:
    from cachewarm import service
    from cachewarm.settings import get_settings

    service.repository(get_settings()).create_table(wait=True)
    return {}


def _child_original(path: str) -> dict[str, Any]:
    """The original demo's loop: the whole file in a list, one batch_writer."""
    import boto3

    from cachewarm.settings import get_settings
    from loaders.progress import peak_rss_mb

    settings = get_settings()
    resource_api = boto3.session.Session().resource(
        "dynamodb", endpoint_url=settings.dynamodb_endpoint, region_name=settings.aws_region)
    table = resource_api.Table(settings.table_name)
    started = time.perf_counter()
    with open(path) as handle:
        items = [json.loads(line) for line in handle]
    with table.batch_writer() as writer:
        for item in items:
            writer.put_item(Item=item)
    seconds = time.perf_counter() - started
    own, _ = _rusage_mb()
    return {"items": len(items), "seconds": round(seconds, 2), "items_per_second": round(len(items) / seconds, 1),
            "peak_rss_mb": peak_rss_mb(), "ru_maxrss_mb": own}


def _child_ours(path: str, workers: int | None, threads: int | None) -> dict[str, Any]:
    """``loaders.load_file`` as the CLI runs it (write-around included)."""
    from cachewarm.settings import get_settings
    from loaders import load_file
    from loaders.progress import peak_rss_mb

    workdir = Path(path).parent
    report = load_file(path, settings=get_settings(), workers=workers, threads=threads,
                       rejects=workdir / "bench.rejects.jsonl", checkpoint=workdir / "bench.checkpoint")
    parent = peak_rss_mb()
    own, child = _rusage_mb()
    return {"items": report.written, "rejected": report.rejected, "seconds": round(report.seconds, 2),
            "items_per_second": round(report.items_per_second, 1), "workers": report.workers,
            "threads": report.threads, "invalidated": report.invalidated,
            # VmHWM of the loading process plus each writer process's own: the figure for the goal.
            "peak_rss_mb": report.peak_rss_mb, "parent_peak_rss_mb": parent,
            "writers_peak_rss_mb": round((report.peak_rss_mb or parent) - parent, 1),
            # The same through getrusage, as asked; an upper bound (see _rusage_mb).
            "ru_maxrss_self_mb": own, "ru_maxrss_largest_child_mb": child,
            "ru_maxrss_total_mb": round(own + (child * report.workers if report.workers > 1 else 0.0), 1)}


# -- the driver ----------------------------------------------------------------------------------


def _child(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_load", "--child", *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_child(env: dict[str, str], table: str, *args: str) -> dict[str, Any]:
    child_env = dict(env, TABLE_NAME=table)
    _child(child_env, "create-table")
    return _child(child_env, *args)


def _head(source: Path, target: Path, lines: int) -> None:
    with open(source, "rb") as src, open(target, "wb") as dst:
        for count, line in enumerate(src):
            if count >= lines:
                break
            dst.write(line)


def run(quick: bool = False) -> dict[str, Any]:
    """Run every measurement; write and return the report."""
    from devstack.private import start_private_stack

    sizes = _size(quick)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="cachewarm-bench-load-"))
    # dynalite on disk, as a real table is: the children each set their own TABLE_NAME.
    stack = start_private_stack(workdir, persist_dynamodb=True)
    env = stack.environ(table_name="BenchLoad", key_prefix="benchload")
    dynalite = stack.dynalite
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "dynalite": {"persist": True, "url": dynalite.url},
    }
    try:
        compare_file = workdir / "compare.jsonl"
        print(f"load bench: generating >= {sizes['compare']:,} items ...", flush=True)
        generated = _child(env, "generate", str(compare_file), str(sizes["compare"]), "1")
        items = generated["lines"]
        print("load bench: original loop (list + one batch_writer) ...", flush=True)
        original = _run_child(env, "BenchOriginal", "original", str(compare_file))
        print(f"  {original['items_per_second']:,.0f} items/s; loading with cachewarm ...", flush=True)
        ours = _run_child(env, "BenchOurs", "ours", str(compare_file))
        ratio = round(ours["items_per_second"] / original["items_per_second"], 2)
        print(f"  {ours['items_per_second']:,.0f} items/s: {ratio}x", flush=True)
        report["compare"] = {"items": items, "file_bytes": generated["file_bytes"], "original": original,
                             "ours": ours, "ratio": ratio, "goal": f">= {GOAL_RATIO}x", "met": ratio >= GOAL_RATIO}

        modes_file = workdir / "modes.jsonl"
        _head(compare_file, modes_file, sizes["modes"])
        modes = []
        for workers, threads in MODES:
            print(f"load bench: {workers} process(es) x {threads} threads on {sizes['modes']:,} lines ...",
                  flush=True)
            got = _run_child(env, f"BenchMode{workers}x{threads}", "ours", str(modes_file), str(workers),
                             str(threads))
            modes.append({"mode": "threads" if workers == 1 else "processes", "workers": workers,
                          "threads": threads, "items_per_second": got["items_per_second"],
                          "peak_rss_mb": got["peak_rss_mb"]})
            print(f"  {got['items_per_second']:,.0f} items/s", flush=True)
        fastest = max(modes, key=lambda m: m["items_per_second"])
        best_threads = max((m for m in modes if m["mode"] == "threads"), key=lambda m: m["items_per_second"])
        best_processes = max((m for m in modes if m["mode"] == "processes"), key=lambda m: m["items_per_second"])
        report["modes"] = {"lines": sizes["modes"], "runs": modes, "fastest": fastest,
                           "processes_over_threads": round(best_processes["items_per_second"]
                                                           / best_threads["items_per_second"], 2)}
        compare_file.unlink()
        modes_file.unlink()

        memory_file = workdir / "memory.jsonl"
        print(f"load bench: generating {sizes['memory']:,} lines for the memory run ...", flush=True)
        generated = _child(env, "generate", str(memory_file), str(sizes["memory"]), "2")
        print("load bench: loading them (peak memory) ...", flush=True)
        memory = _run_child(env, "BenchMemory", "ours", str(memory_file))
        memory.update(lines=generated["lines"], file_bytes=generated["file_bytes"],
                      goal=f"< {GOAL_PEAK_MB:.0f} MB", met=memory["peak_rss_mb"] < GOAL_PEAK_MB)
        print(f"  peak {memory['peak_rss_mb']} MB (loader {memory['parent_peak_rss_mb']} MB + writers "
              f"{memory['writers_peak_rss_mb']} MB; getrusage bound {memory['ru_maxrss_total_mb']} MB) at "
              f"{memory['items_per_second']:,.0f} items/s", flush=True)
        report["memory"] = memory
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"load bench: report written to {REPORT.relative_to(ROOT)} in {report['seconds']}s", flush=True)
    return report


def figures(quick: bool = False) -> list:
    """The figures for ``make bench`` (also writes reports/bench_load.json)."""
    from benchmarks.common import Figure

    report = run(quick=quick)
    compare, memory, modes = report["compare"], report["memory"], report["modes"]
    return [
        Figure("load_speedup_vs_original_batch_writer", compare["ratio"], "x", f">= {GOAL_RATIO}x",
               compare["original"]["items_per_second"], compare["met"],
               {"items": compare["items"], "ours_items_per_second": compare["ours"]["items_per_second"],
                "original_items_per_second": compare["original"]["items_per_second"],
                "original_peak_rss_mb": compare["original"]["peak_rss_mb"]}),
        Figure("load_peak_memory_1m_lines" if not quick else "load_peak_memory_100k_lines",
               memory["peak_rss_mb"], "MB", f"< {GOAL_PEAK_MB:.0f} MB", None, memory["met"],
               {k: memory[k] for k in ("lines", "parent_peak_rss_mb", "writers_peak_rss_mb", "workers",
                                       "ru_maxrss_total_mb", "items_per_second")}),
        Figure("load_processes_over_threads", modes["processes_over_threads"], "x",
               "measured (best processes / best threads)", None, None,
               {"runs": modes["runs"], "fastest": modes["fastest"]}),
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.bench_load [--quick]``; ``--child`` is the subprocess side."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20k / 10k / 100k lines instead of 200k / 50k / 1M")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "generate":
            result = _child_generate(rest[0], int(rest[1]), int(rest[2]))
        elif kind == "create-table":
            result = _child_create_table()
        elif kind == "original":
            result = _child_original(rest[0])
        else:
            workers, threads = (int(rest[1]), int(rest[2])) if len(rest) > 1 else (None, None)
            result = _child_ours(rest[0], workers, threads)
        print(json.dumps(result))
        return 0
    report = run(quick=args.quick)
    print(json.dumps({k: report[k] for k in ("compare", "modes", "memory")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

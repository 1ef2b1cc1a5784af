"""``python -m benchmarks`` (``make bench``): every engineering benchmark in one run.

Writes ``reports/benchmarks.json`` (an entry per figure: value, goal, baseline,
unit, met) and rewrites the README's table between its bench markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "benchmarks.json"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
#: Every benchmark, by its --only key.
ALL = ("hit", "near", "speedup", "warm", "stampede", "cold", "warming", "shard", "feed", "load")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the report; exit 0 even when a goal is missed (it is a measurement)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", help=f"comma-separated subset: {','.join(ALL)}")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite README.md's table")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(ALL)
    if only - set(ALL):
        parser.error(f"unknown benchmark(s): {','.join(sorted(only - set(ALL)))} (choose from {','.join(ALL)})")

    from benchmarks import (
        bench_change_feed,
        bench_cold_cache,
        bench_hit_path,
        bench_near_cache,
        bench_shard,
        bench_speedup,
        bench_stampede,
        bench_warm,
        bench_warming,
    )
    from benchmarks.common import Figure, bench_stack, seed

    figures = []
    started = time.perf_counter()
    restaurants = 2_000 if args.quick else 10_000
    if only & {"hit", "near", "speedup", "warm", "stampede", "cold", "warming", "shard", "feed"}:
        with bench_stack() as stack:
            print(f"seeding {restaurants} restaurants ...", flush=True)
            names = seed(stack, restaurants=restaurants, reviews_per_restaurant=4)
            steps = [
                ("hit", lambda: bench_hit_path.run(stack, names, requests=5_000 if args.quick else 20_000)),
                # The near cache's hit vs a raw GET, and a write's trip to another process's near cache.
                ("near", lambda: bench_near_cache.run(stack, names, requests=5_000 if args.quick else 20_000,
                                                      rounds=50 if args.quick else 200)),
                ("speedup", lambda: bench_speedup.run(stack, names, sample=100 if args.quick else 300)),
                ("stampede", lambda: bench_stampede.run(stack, names)),
                ("warm", lambda: bench_warm.run(stack, names, count=restaurants)),
                # Before "feed": the whole cache lost under a steady load (its own key prefixes);
                # also writes reports/cold_cache.json and docs/images/cold-cache.png.
                ("cold", lambda: bench_cold_cache.run(stack, names, quick=args.quick)),
                # Lazy loading, + XFetch, + warm_hot under a steady load with a short TTL (its own key
                # prefixes); also writes reports/warming.json and docs/images/warming.png.
                ("warming", lambda: bench_warming.run(stack, names, quick=args.quick)),
                # One shard's hits, memory per summary, a 3-primary cluster, the broker (reports/shard.json).
                ("shard", lambda: bench_shard.run(stack, names, quick=args.quick)),
                # Last: its catch-up with the seeding's stream records invalidates every name.
                ("feed", lambda: bench_change_feed.run(stack, names, writes=50 if args.quick else 200)),
            ]
            for key, step in steps:
                if key in only:
                    print(f"running {key} ...", flush=True)
                    figures += step()
    if "load" in only:
        from benchmarks import bench_load

        print("running load ...", flush=True)
        figures += bench_load.figures(quick=args.quick)

    partial = None
    if args.only and REPORT.exists():
        # A partial run replaces its own figures (in place) and keeps the rest of the last report's;
        # "partial" says which figures this run measured and where the others come from.
        previous = json.loads(REPORT.read_text())
        fresh = {f.name: f for f in figures}
        figures = [fresh.pop(f["name"], None) or Figure(**f) for f in previous["figures"]] + list(fresh.values())
        others = (previous.get("partial") or {}).get("others_from") or {
            "generated_at": previous.get("generated_at"), "quick": previous.get("quick")}
        partial = {"only": sorted(only), "others_from": others}
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "quick": args.quick,
        **({"partial": partial} if partial else {}),
        "figures": [f.to_dict() for f in figures],
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown_table(report)
    print(table)
    print(f"report written to {REPORT.relative_to(ROOT)}")
    if not args.no_readme and README.exists() and not args.quick and only == set(ALL):
        update_readme(table)
    return 0


def markdown_table(report: dict) -> str:
    """The report as the README's table."""
    lines = ["| figure | value | baseline (same run) | goal | met |", "|---|---|---|---|---|"]
    for f in report["figures"]:
        baseline = "" if f["baseline"] is None else f"{f['baseline']}"
        met = {True: "yes", False: "**no**", None: "n/a"}[f["met"]]
        lines.append(f"| {f['name']} | {f['value']} {f['unit']} | {baseline} | {f['goal']} | {met} |")
    lines.append(f"\n_Measured {report['generated_at']} on {report['machine']['cpus']} CPUs "
                 f"(`make bench`, {report['seconds']} s)._")
    return "\n".join(lines)


def update_readme(table: str) -> None:
    """Replace the text between the README's bench markers."""
    text = README.read_text()
    if START not in text or END not in text:
        return
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    README.write_text(pattern.sub(lambda _: f"{START}\n{table}\n{END}", text))


if __name__ == "__main__":
    sys.exit(main())

"""The cold-cache benchmark's plot: DynamoDB load, fills in flight and hit ratio per second, both modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"capped": "tab:blue", "uncapped": "tab:red"}


def plot(report: dict[str, Any], path: Path) -> Path:
    """Write the PNG of ``report`` (as :mod:`benchmarks.bench_cold_cache` stores it) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    from benchmarks.bench_cold_cache import recovery_seconds

    plan = report["plan"]
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (reads, flight, hits) = plt.subplots(3, 1, figsize=(10, 9), sharex=True,
                                              gridspec_kw={"height_ratios": [3, 2, 3]})
    for mode, data in report["modes"].items():
        series = data["series"]
        x = series["second"]
        label = f"CACHE_MAX_FILLS={data['cap']}" if data["cap"] else "no cap (CACHE_MAX_FILLS=0)"
        # Steps: each value is one second's bucket, [s, s + 1) since the flush.
        style = {"color": COLORS[mode], "label": label, "linewidth": 1.2, "drawstyle": "steps-post"}
        reads.plot(x, series["dynamodb_reads"], **style)
        flight.plot(x, series["dynamodb_peak_in_flight"], **style)
        hits.plot(x, [100 * r if r is not None else None for r in series["hit_ratio"]], **style)
        recovered = recovery_seconds(series["hit_ratio"], plan["warmup"], plan["hit_goal"])
        if recovered is not None:  # the end of the first bucket back at the goal
            hits.plot([recovered], [100 * plan["hit_goal"]], marker="o", color=COLORS[mode])
            hits.annotate(f"{recovered} s", (recovered, 100 * plan["hit_goal"]), textcoords="offset points",
                          xytext=(4, -14), fontsize=8, color=COLORS[mode])
    reads.axhline(plan["bound_per_s"], color="tab:blue", linestyle=":", linewidth=1,
                  label=f"bound: cap / Query delay = {plan['cap']} / {plan['delay'] * 1000:.0f} ms "
                        f"= {plan['bound_per_s']:.0f}/s")
    reads.set_ylabel("DynamoDB Queries / s")
    reads.set_title("DynamoDB reads per second")
    flight.axhline(plan["cap"], color="tab:blue", linestyle=":", linewidth=1, label=f"cap = {plan['cap']}")
    flight.set_ylabel("Queries in flight (max per s)")
    flight.set_title("Most DynamoDB Queries in flight at once")
    hits.axhline(100 * plan["hit_goal"], color="gray", linestyle=":", linewidth=1,
                 label=f"{100 * plan['hit_goal']:.0f} %")
    hits.set_ylabel("hit ratio, % (per second)")
    hits.set_ylim(0, 101)
    hits.set_title("Hit ratio (reads answered from the cache at the first look; dot: back at the goal)")
    hits.set_xlabel("seconds since the whole cache was emptied (SCAN + UNLINK of the prefix)")
    for ax, where in ((reads, "upper right"), (flight, "upper right"), (hits, "lower right")):
        ax.axvline(0, color="black", linestyle="--", linewidth=0.9)
        ax.grid(True, alpha=0.3)
        ax.legend(loc=where, fontsize=8)
    period = plan.get("warm_period_s")
    fig.suptitle(
        f"Cold cache under a steady load: {plan['restaurants']} restaurants, Zipf s={plan['zipf_s']}, "
        f"{plan['processes']} processes x {plan['threads']} threads, Query +{plan['delay'] * 1000:.0f} ms"
        + (f" (warm period {period:.0f} s)" if period else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

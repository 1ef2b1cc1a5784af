"""The warming benchmark's plot: hit ratio and DynamoDB reads per second, three modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"lazy": "tab:red", "xfetch": "tab:orange", "warm_hot": "tab:blue"}
LABELS = {"lazy": "lazy loading only (xfetch_beta=0)", "xfetch": "+ XFetch (beta 1.0)",
          "warm_hot": "+ XFetch + warm_hot"}


def plot(report: dict[str, Any], path: Path) -> Path:
    """Write the PNG of ``report`` (as :mod:`benchmarks.bench_warming` stores it) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    plan, summary = report["plan"], report["summary"]
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (hits, reads) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    lowest = 1.0
    for mode, data in report["modes"].items():
        series, s = data["series"], summary[mode]
        x = series["second"]
        # Steps: each value is one second's bucket, [s, s + 1).
        style = {"color": COLORS[mode], "linewidth": 1.1, "drawstyle": "steps-post"}
        ratio = [100 * r if r is not None else None for r in series["hit_ratio"]]
        hits.plot(x, ratio, label=f"{LABELS[mode]}: {100 * s['hit_ratio']:.2f} % measured, "
                                  f"p50 {s['read_p50_ms']:.1f} / p99 {s['read_p99_ms']:.1f} ms", **style)
        reads.plot(x, series["dynamodb_reads"], label=f"{LABELS[mode]}: {s['dynamodb_reads_per_s']:.0f}/s measured",
                   **style)
        if any(series["warm_reads"]):
            reads.plot(x, series["warm_reads"], color=COLORS[mode], linewidth=0.8, linestyle=":",
                       drawstyle="steps-post", label=f"of which warm_hot's reads ({s['warm_reads_per_s']:.0f}/s)")
        measured = [r for r in series["hit_ratio"][plan["warmup"]:] if r is not None]
        lowest = min([lowest, *measured])
    # Room below the measured curves for the legend; the warm-up's cold start would flatten the rest.
    hits.set_ylim(max(0.0, 100 * lowest - 8), 100.2)
    hits.set_ylabel("hit ratio, % (per second)")
    hits.set_title("Hit ratio (answered from the cache at the first look; refreshes and waits are not hits)")
    reads.set_ylabel("DynamoDB Queries / s")
    reads.set_title("DynamoDB reads per second (readers' misses and refreshes, and the warms)")
    reads.set_xlabel(f"seconds since measuring started (a cold cache at {-plan['warmup']} s; "
                     f"keys expire after {plan['ttl']} s + up to {100 * plan['jitter']:.0f} %)")
    for ax in (hits, reads):
        ax.axvspan(-plan["warmup"], 0, color="gray", alpha=0.12, label="warm-up (not measured)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right" if ax is hits else "upper right", fontsize=8)
    fig.suptitle(
        f"Warming under a steady load: {plan['restaurants']} restaurants, Zipf s={plan['zipf_s']}, "
        f"{plan['processes']} processes x {plan['threads']} threads, Query +{plan['delay'] * 1000:.0f} ms; "
        f"warm_hot: top {plan['top_k']} every {plan['warm_period_s']:g} s",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""Plot one benchmark run: per-request latency, and the latency CDF with p50/p99 marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LABELS = {"db_ms": "DynamoDB (direct query)", "miss_ms": "cache miss (query + fill)", "hit_ms": "cache hit"}
COLORS = {"db_ms": "tab:orange", "miss_ms": "tab:red", "hit_ms": "tab:blue"}


def plot_run(run: dict[str, Any], path: str | Path) -> Path:
    """Write a PNG for ``run`` (as stored) to ``path`` and return the path."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = run["samples"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for series, values in samples.items():
        left.plot(range(1, len(values) + 1), values, marker=".", linewidth=0.8, label=LABELS[series],
                  color=COLORS[series])
    left.set_yscale("log")  # hits and DynamoDB differ by an order of magnitude
    left.set_xlabel("request (one per sampled restaurant)")
    left.set_ylabel("latency, ms (log scale)")
    left.set_title("Per-request latency")
    left.grid(True, which="both", alpha=0.3)
    left.legend()

    for series, values in samples.items():
        ordered = sorted(values)
        n = len(ordered)
        right.plot(ordered, [(i + 1) / n for i in range(n)], label=LABELS[series], color=COLORS[series])
        for pct, style in (("p50", "--"), ("p99", ":")):
            x = run[series][pct]
            right.axvline(x, color=COLORS[series], linestyle=style, linewidth=0.9)
            right.annotate(f"{pct} {x:.2f}", (x, 0.5 if pct == "p50" else 0.98), fontsize=7,
                           color=COLORS[series], rotation=90, va="top", ha="right")
    right.set_xscale("log")
    right.set_xlabel("latency, ms (log scale)")
    right.set_ylabel("fraction of requests")
    right.set_title("CDF (dashed p50, dotted p99)")
    right.grid(True, which="both", alpha=0.3)
    right.legend(loc="lower right")

    env = run.get("environment", {})
    fig.suptitle(
        f"run {run['run_id']} · {run['sample']} restaurants · {env.get('item_count', '?')} items · "
        f"speedup p50 {run['speedup_p50']}x p99 {run['speedup_p99']}x",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""``cachewarm stats``: the cache and the workers at a glance (``--json`` for scripts)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from cachewarm_cli.output import console, print_json, printable

app = typer.Typer()


def gather(top: int = 10) -> dict[str, Any]:
    """Build the report from the live system (see :func:`cachewarm.stats.collect`)."""
    from redis.exceptions import RedisError

    from cachewarm.clients import cache_redis, redis_client
    from cachewarm.errors import TransportError
    from cachewarm.keys import KeySchema
    from cachewarm.masking import mask_url
    from cachewarm.settings import get_settings
    from cachewarm.stats import collect
    from workers.beat_schedule import beat_schedule as read_beat_schedule
    from workers.config import celery_config
    from workers.schedule import beat_schedule

    settings = get_settings()
    cache = cache_redis(settings)
    try:
        cache.ping()
    except (RedisError, OSError) as exc:
        raise TransportError(f"cannot reach the cache's Redis at {mask_url(settings.cache_url)}: {exc}") from None
    broker = cache if settings.broker_url == settings.cache_url else redis_client(settings.broker_url, timeout=5.0)
    configured = beat_schedule(settings)
    redbeat_prefix = celery_config(settings)["redbeat_key_prefix"]
    report = collect(
        cache,
        KeySchema(prefix=settings.key_prefix),
        schedule=lambda now: read_beat_schedule(broker, redbeat_prefix, configured, now),
        scheduled_tasks=[entry["task"] for entry in configured.values()],
        top=top,
    )
    report = {"cache": mask_url(settings.cache_url), "broker": mask_url(settings.broker_url), **report}
    return report


@app.command("stats")
def stats(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    top: int = typer.Option(10, "--top", min=1, max=1000, help="How many hot keys to list."),
) -> None:
    """Hit ratio and consistency (1m/5m/1h/24h), keys and memory, hot keys, last task runs, beat schedule."""
    report = gather(top)
    if as_json:
        print_json(report)
    else:
        render(report)


def _num(value: Any, fmt: str = "{:,}") -> str:
    return "-" if value is None else fmt.format(value)


def render(report: dict[str, Any]) -> None:
    """A person's view of the report."""
    from rich.console import Console

    # Piped output has no width; give the tables room instead of rich's 80 columns.
    out = console if console.is_terminal else Console(highlight=False, width=200)
    out.print(f"cache {report['cache']}  prefix {report['key_prefix']}  at {report['generated_at']}",
                  markup=False)

    t = Table("window", "hit ratio", "reads", "hits", "misses", "fills", "fill ms", "waits", "wait t/o",
              "refused", "refused hold", "invalidations", "early refresh", title="cache reads")
    for label, w in report["windows"].items():
        _row(t, label, _num(w["hit_ratio"], "{:.1%}"), _num(w["reads"]), _num(w["hits"]), _num(w["misses"]),
                  _num(w["fills"]), _num(w["fill_ms_avg"], "{:.2f}"), _num(w["waits"]), _num(w["wait_timeouts"]),
                  _num(w["refused_lease"] + w["refused_floor"]), _num(w["refused_hold"]), _num(w["invalidations"]),
                  _num(w["early_refreshes"]))
    out.print(t)
    _render_consistency(out, report.get("consistency") or {})

    keys, mem = report.get("keys") or {}, report.get("memory") or {}
    t = Table("summaries", "keys in db", "used memory", "maxmemory", "policy", "evicted keys",
              title="keys and memory")
    maxmemory = mem.get("maxmemory")
    _row(t, _num(keys.get("summaries")), _num(keys.get("db_keys")), mem.get("used_memory_human") or "-",
              "none" if maxmemory == 0 else (mem.get("maxmemory_human") or "-"),
              mem.get("maxmemory_policy") or "unknown", _num(mem.get("evicted_keys")))
    out.print(t)
    if mem.get("eviction_warning"):
        out.print(f"warning: {mem['eviction_warning']}", markup=False)

    t = Table("#", "name", "score", title=f"top {len(report['hot_keys'])} hot keys")
    for rank, hot in enumerate(report["hot_keys"], start=1):
        _row(t, str(rank), hot["name"], f"{hot['score']:.1f}")
    out.print(t)

    # "attempts" is the last run's (1 + retries); "runs" and "failures" count final outcomes.
    t = Table("task", "last run", "state", "runtime", "attempts", "result / error", "runs", "failures",
              title="task runs")
    for run in report["tasks"]:
        if run["state"] is None:
            _row(t, run["task"], "never", "-", "-", "-", "", "0", "0")
            continue
        outcome = run["error"] or _short(run["result"])
        _row(t, run["task"], run["last_run"], run["state"], _num(run["runtime_s"], "{:.2f}s"),
             _num(run.get("attempts")), outcome, str(run["runs"]), str(run["failures"]))
    out.print(t)

    if "schedule" in report:
        t = Table("entry", "task", "schedule", "last run", "next run", "source", title="beat schedule")
        for e in report["schedule"]:
            nxt = e["next_run_at"] or e["note"] or "-"
            if e["overdue"]:
                nxt += " (overdue: is beat running?)"
            if not e["enabled"]:
                nxt = "disabled"
            _row(t, e["name"], e["task"], e["schedule"], e["last_run_at"] or "never", nxt, e["source"])
        out.print(t)

    for section, error in report["errors"].items():
        out.print(f"{section}: unavailable ({error})", markup=False)


def _render_consistency(out: Any, consistency: dict[str, Any]) -> None:
    """The audit's findings and the change feed's work per window, then the feed's lag."""
    t = Table("window", "audited", "stale", "stale %", "feed records", "ignored", "invalidated",
              title="consistency (audit and change feed)")
    for label, c in (consistency.get("windows") or {}).items():
        _row(t, label, _num(c["checked"]), _num(c["stale"]), _num(c["stale_fraction"], "{:.2%}"),
             _num(c["feed_records"]), _num(c["feed_ignored"]), _num(c["feed_invalidated"]))
    out.print(t)
    lag = consistency.get("feed_lag")
    if lag and lag["count"]:
        out.print(f"change feed lag, write to invalidation (last {lag['count']:,}): "
                  f"p50 {lag['p50_ms']:,.1f} ms, p99 {lag['p99_ms']:,.1f} ms", markup=False)
    elif lag is not None:
        out.print("change feed lag: no samples yet", markup=False)


def _row(table: Table, *cells: str) -> None:
    # Text, not markup: a restaurant called "[bold]x" is printed as it is; control characters as escapes.
    table.add_row(*(Text(printable(cell)) for cell in cells))


def _short(result: Any, limit: int = 80) -> str:
    if result is None:
        return ""
    if isinstance(result, dict):  # the scalar figures; nested ones are in --json
        text = ", ".join(f"{k}={v}" for k, v in result.items() if not isinstance(v, dict))
    else:
        text = str(result)
    return text if len(text) <= limit else text[: limit - 1] + "…"

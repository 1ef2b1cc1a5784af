"""``cachewarm bench``: run the benchmark on a worker; list, show and compare stored runs."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from cachewarm_cli.output import console, err_console, print_json

TASK = "cachewarm.run_benchmark"
ROWS = (("db_ms", "DynamoDB"), ("miss_ms", "cache miss"), ("hit_ms", "cache hit"))

app = typer.Typer(help="Lazy-loading benchmark: DynamoDB vs cache.")


def results_table(run: dict[str, Any], title: str | None = None) -> Table:
    """A person's view of one run."""
    table = Table("read", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms",
                  title=title or f"benchmark {run['run_id']} ({run['sample']} restaurants)")
    for key, label in ROWS:
        s = run[key]
        table.add_row(label, *(f"{s[p]:.3f}" for p in ("p50", "p90", "p99", "mean", "max")))
    table.caption = (f"speedup p50 {run['speedup_p50']}x, p99 {run['speedup_p99']}x; "
                     f"hit ratio {run['hit_ratio']:.0%}")
    return table


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    sample: int = typer.Option(50, "--sample", min=1, max=5000, help="Restaurants to sample."),
    wait: bool = typer.Option(False, "--wait", help="Follow the worker's progress and print the result."),
    as_json: bool = typer.Option(False, "--json", help="Print the run as one JSON object."),
    plot: str = typer.Option(None, "--plot", help="Write a PNG of the run here (implies --wait)."),
    timeout: float = typer.Option(600.0, help="Seconds to wait."),
) -> None:
    """Enqueue ``cachewarm.run_benchmark`` on a worker (``--wait`` to see the result)."""
    if ctx.invoked_subcommand is not None:
        return
    from cachewarm.settings import get_settings
    from workers import app as celery_app

    get_settings()
    result = celery_app.send_task(TASK, kwargs={"sample": sample})
    if not (wait or plot):
        if as_json:
            print_json({"task_id": result.id})
        else:
            console.print(f"queued {TASK} {result.id}; follow it with 'cachewarm bench list'", markup=False)
        return
    summary = follow_run(result, timeout, quiet=as_json)
    run = _store().get(summary["run_id"])
    if plot:
        from cachewarm_cli.plot import plot_run

        path = plot_run(run, plot)
        err_console.print(f"plot written to {path}", markup=False)
    if as_json:
        print_json({k: v for k, v in run.items() if k != "samples"})
    else:
        console.print(results_table(run))


@app.command("list")
def list_runs(
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Stored runs, newest first."""
    runs = _store().list(limit)
    if as_json:
        print_json(runs)
        return
    table = Table("run id", "sample", "db p50", "hit p50", "speedup p50", "items", "code")
    for run in runs:
        table.add_row(run["run_id"], str(run["sample"]), f"{run['db_ms']['p50']:.2f}",
                      f"{run['hit_ms']['p50']:.3f}", f"{run['speedup_p50']}x",
                      str(run["environment"].get("item_count", "")), run["environment"].get("code_version", ""))
    console.print(table)


@app.command("show")
def show(
    run_id: str,
    as_json: bool = typer.Option(False, "--json"),
    plot: str = typer.Option(None, "--plot", help="Write a PNG of the run here."),
) -> None:
    """One stored run."""
    run = _store().get(run_id)
    if plot:
        from cachewarm_cli.plot import plot_run

        err_console.print(f"plot written to {plot_run(run, plot)}", markup=False)
    if as_json:
        print_json(run)
    else:
        console.print(results_table(run))


@app.command("compare")
def compare(run_a: str, run_b: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Compare two runs: B relative to A, per read kind and percentile."""
    store = _store()
    a, b = store.get(run_a), store.get(run_b)
    rows = {}
    for key, _ in ROWS:
        rows[key] = {p: {"a": a[key][p], "b": b[key][p], "ratio": round(b[key][p] / a[key][p], 3)
                         if a[key][p] else None} for p in ("p50", "p90", "p99", "mean")}
    if as_json:
        print_json({"a": run_a, "b": run_b, "ratios": rows})
        return
    table = Table("read", "pct", run_a, run_b, "B/A", title="benchmark comparison")
    for key, label in ROWS:
        for pct, cell in rows[key].items():
            table.add_row(label, pct, f"{cell['a']:.3f}", f"{cell['b']:.3f}",
                          "" if cell["ratio"] is None else f"{cell['ratio']:.2f}")
    console.print(table)


def _store():
    from cachewarm import service
    from cachewarm.bench_store import BenchmarkStore
    from cachewarm.settings import get_settings

    return BenchmarkStore(service.repository(get_settings()))


def follow_run(result, timeout: float, *, quiet: bool) -> dict[str, Any]:
    """Wait for the task, showing done/total from its PROGRESS state (a bar on a terminal only)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cachewarm.errors import CachewarmError, TransportError
    from workers.progress import TaskFailed, TaskTimeout, follow

    with Progress(TextColumn("benchmark"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, disable=quiet or not err_console.is_terminal) as bar:
        task = bar.add_task("bench", total=None)
        try:
            return follow(result, lambda meta: bar.update(task, completed=meta.get("done", 0),
                                                          total=meta.get("total")), timeout=timeout)
        except TaskTimeout:
            raise TransportError(f"no worker finished {TASK} {result.id} within {timeout:.0f}s; "
                                 "is 'celery -A workers worker' running?") from None
        except TaskFailed as exc:
            raise CachewarmError(f"{TASK} failed on the worker: {exc.error!r}") from None

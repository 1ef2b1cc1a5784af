"""``cachewarm load FILE`` and ``cachewarm generate -o FILE``.

Exit codes of ``load``: 0 only when every line was written; 1 when any line was
rejected (or the load failed); 2 for usage and configuration errors (a missing
file, a bad option, a checkpoint of another file).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from cachewarm_cli.output import console, err_console, print_json, usage_error
from loaders import DEFAULT_THREADS, DEFAULT_WORKERS

#: ``workers.fanout.CHUNK_LINES``, written out: importing ``workers`` here would
#: load Celery into every ``cachewarm`` start. tests/unit/shell checks they agree.
CHUNK_LINES_DEFAULT = 5_000
#: Seconds between progress lines when stderr is not a terminal.
PLAIN_PROGRESS_SECONDS = 5.0

app = typer.Typer()


@app.command("load")
def load(
    file: str = typer.Argument(..., help="JSON-lines file (plain or gzip), or s3://BUCKET/KEY."),
    create_table: bool = typer.Option(False, "--create-table", help="Create the table first if it is missing."),
    workers: int | None = typer.Option(None, "--workers", min=1, max=64,
                                       help=f"Writer processes (default {DEFAULT_WORKERS})."),
    threads: int | None = typer.Option(None, "--threads", min=1, max=64,
                                       help=f"Concurrent batch requests per writer (default {DEFAULT_THREADS})."),
    resume: bool = typer.Option(False, "--resume", help="Skip the blocks an interrupted load finished."),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Rejects file (default ./<FILE name>.rejects.jsonl, only if needed).",
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Checkpoint file (default ./<FILE name>.checkpoint; deleted when done).",
    ),
    run_async: bool = typer.Option(False, "--async", help="Enqueue cachewarm.bulk_load; print the task id."),
    wait: bool = typer.Option(False, "--wait", help="Follow the Celery load with a progress bar (implies --async)."),
    chunk_lines: int | None = typer.Option(
        None, "--chunk-lines", min=1, help=f"With --async: lines per load_chunk task (default {CHUNK_LINES_DEFAULT}).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Bulk-load a JSON-lines file into the table: every line written or rejected with its number."""
    from cachewarm.settings import get_settings

    settings = get_settings()
    if run_async or wait:
        if resume or workers or checkpoint:
            usage_error("--resume, --workers and --checkpoint apply to local loads; a Celery load spreads over the "
                   "workers' processes and resumes by itself when a worker is lost")
        result = _enqueue(file, settings, rejects=rejects, create_table=create_table, threads=threads,
                          chunk_lines=chunk_lines)
        if not wait:
            console.print(result.id, markup=False)
            err_console.print(f"queued cachewarm.bulk_load for {file}; follow it in Flower, or with "
                              f"--async --wait", markup=False)
            return
        err_console.print(f"queued cachewarm.bulk_load {result.id} for {file}", markup=False)
        report = _follow(result)
    else:
        if chunk_lines:
            usage_error("--chunk-lines applies to --async loads")
        report = _load_here(file, settings, create_table=create_table, workers=workers, threads=threads,
                            resume=resume, rejects=rejects, checkpoint=checkpoint)
    _summarize(report, settings, as_json=as_json)
    raise typer.Exit(0 if report.ok else 1)


@app.command("generate")
def generate(
    output: str = typer.Option(..., "-o", "--output", help="File to write (.gz writes gzip; - is stdout)."),
    restaurants: int = typer.Option(..., "--restaurants", min=1, help="How many restaurants."),
    reviews_per_restaurant: int = typer.Option(
        20, "--reviews-per-restaurant", min=0, help="Mean reviews per restaurant (skewed: a few get many more).",
    ),
    seed: int = typer.Option(0, "--seed", help="Same seed, same bytes."),
) -> None:
    """Write sample data in the original JSON-lines format, deterministically and in constant memory."""
    from loaders.errors import InputError
    from loaders.generate import generate_file

    started = time.perf_counter()
    try:
        lines = generate_file(output, restaurants=restaurants, reviews_per_restaurant=reviews_per_restaurant,
                              seed=seed)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
    if output != "-":
        console.print(f"wrote {lines:,} lines ({restaurants:,} restaurants) to {output} with seed {seed} in "
                      f"{time.perf_counter() - started:.1f}s", markup=False)


# -- local load --------------------------------------------------------------------


def _load_here(file: str, settings, *, create_table: bool, workers: int | None, threads: int | None,
               resume: bool, rejects: Path | None, checkpoint: Path | None):
    from loaders.pipeline import default_paths, load_file

    display = ProgressDisplay(unit="bytes")
    try:
        return load_file(file, settings=settings, workers=workers, threads=threads, create_table=create_table,
                         resume=resume, rejects=rejects, checkpoint=checkpoint,
                         progress=lambda p: display.update(p.done_bytes, p.total_bytes, p.lines - p.resumed_lines,
                                                           p.elapsed))
    except KeyboardInterrupt:
        display.stop()
        where = checkpoint or default_paths(file)[1]
        err_console.print(f"interrupted; finished blocks are recorded in {where}: run the same command with "
                          f"--resume to continue", markup=False)
        raise typer.Exit(130) from None
    finally:
        display.stop()


# -- through Celery ----------------------------------------------------------------


def _enqueue(file: str, settings, *, rejects: Path | None, create_table: bool, threads: int | None,
             chunk_lines: int | None):
    """Check what can be checked here, then send cachewarm.bulk_load; return its AsyncResult."""
    from cachewarm import service
    from loaders.errors import EmptyInputError
    from loaders.pipeline import default_paths
    from loaders.reader import open_source

    source = open_source(file, region=settings.aws_region)  # a missing file fails here, not on a worker
    if source.size == 0:
        raise EmptyInputError(f"{source.uri} is empty: there is nothing to load")
    path = source.uri if source.uri.startswith("s3://") else str(Path(source.uri).resolve())
    if not create_table:
        service.repository(settings).describe()
    kwargs: dict[str, Any] = {
        "path": path,
        "rejects": str((rejects or default_paths(file)[0]).resolve()),
        "create_table": create_table,
        "threads": threads,
    }
    if chunk_lines:
        kwargs["chunk_lines"] = chunk_lines
    from cachewarm_cli.broker import send_all
    from workers import app

    # send_all turns a refusing broker (down, full, wrong password) into one line naming the cause.
    return send_all(app, "cachewarm.bulk_load", [{"kwargs": kwargs}])[0]


def _follow(result):
    """Follow the task (its PROGRESS meta as a bar, or plain lines); return its LoadReport."""
    from cachewarm.errors import CachewarmError
    from loaders.report import LoadReport
    from workers.progress import TaskFailed, follow

    display = ProgressDisplay(unit="lines")
    started = time.monotonic()

    def show(meta: dict[str, Any]) -> None:
        if "total" in meta:
            done = int(meta.get("done", 0))
            display.update(done, int(meta["total"]), done, time.monotonic() - started)

    def hint() -> None:
        err_console.print("still PENDING: is a worker consuming the 'load' queue? "
                          "(celery -A workers worker)", markup=False)

    try:
        return LoadReport.from_dict(follow(result, show, timeout=None, pending_hint=hint))
    except TaskFailed as exc:
        display.stop()
        raise CachewarmError(f"cachewarm.bulk_load {result.id} failed: {type(exc.error).__name__}: "
                             f"{exc.error}") from None
    except KeyboardInterrupt:
        display.stop()
        err_console.print(f"stopped following; the load goes on. Task id: {result.id}", markup=False)
        raise typer.Exit(130) from None
    finally:
        display.stop()


# -- output ----------------------------------------------------------------------------


def _summarize(report, settings, *, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
    else:
        extra = []
        if report.duplicates:
            extra.append(f"{_lines(report.duplicates)} superseded by a later line with the same key")
        if report.resumed_lines:
            extra.append(f"{_lines(report.resumed_lines)} finished by an earlier run")
        note = f" ({'; '.join(extra)})" if extra else ""
        console.print(
            f"loaded {report.source}: {_lines(report.lines)}, {report.written:,} written, "
            f"{report.rejected:,} rejected{note} in {report.seconds:.1f}s "
            f"({report.items_per_second:,.0f} items/s)",
            markup=False, soft_wrap=True,
        )
    if report.rejected:
        err_console.print(f"{_lines(report.rejected)} rejected:", markup=False)
        for reject in report.sample_rejects:
            text = reject.text if len(reject.text) <= 80 else reject.text[:77] + "..."
            err_console.print(f"  line {reject.line}: {reject.reason}: {text!r}", markup=False, soft_wrap=True)
        more = report.rejected - len(report.sample_rejects)
        if more > 0:
            err_console.print(f"  ... and {more:,} more", markup=False)
        if report.rejects_path:
            err_console.print(f"every rejected line (number, reason, original text) is in {report.rejects_path}",
                              markup=False, soft_wrap=True)
    if report.invalidation_skipped:
        err_console.print(
            f"warning: the cache was unavailable, so {report.invalidation_skipped:,} restaurant summaries were not "
            f"invalidated; they may be stale for up to {settings.cache_ttl}s (run 'cachewarm invalidate --all' "
            f"once the cache is back)", markup=False, soft_wrap=True,
        )


class ProgressDisplay:
    """A rich progress bar (items/s, ETA) on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, *, unit: str):
        self.unit = unit
        self.terminal = err_console.is_terminal
        self._progress: Any = None
        self._task: Any = None
        self._last_plain = time.monotonic()

    def update(self, completed: int, total: int, items: int, elapsed: float) -> None:
        """Show ``completed`` of ``total`` (bytes or lines) and ``items`` handled in ``elapsed`` seconds."""
        rate = items / elapsed if elapsed > 0 else 0.0
        if self.terminal:
            self._rich(completed, total, rate)
            return
        now = time.monotonic()
        if now - self._last_plain < PLAIN_PROGRESS_SECONDS:
            return
        self._last_plain = now
        fraction = completed / total if total else 1.0
        eta = elapsed * (total - completed) / completed if completed else None
        eta_text = f", ETA {_clock(eta)}" if eta is not None else ""
        err_console.print(f"load: {fraction:.0%} ({items:,} lines, {rate:,.0f} items/s{eta_text})", markup=False)

    def _rich(self, completed: int, total: int, rate: float) -> None:
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("load"), BarColumn(), TaskProgressColumn(),
                TextColumn("{task.fields[rate]} items/s"), TextColumn("ETA"), TimeRemainingColumn(),
                TimeElapsedColumn(), console=err_console, transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("load", total=total or None, rate="0")
        self._progress.update(self._task, completed=completed, total=total or None, rate=f"{rate:,.0f}")

    def stop(self) -> None:
        """Remove the live display (idempotent)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _lines(count: int) -> str:
    return f"{count:,} line" + ("" if count == 1 else "s")


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

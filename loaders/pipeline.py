"""The load pipeline: read blocks, validate lines, write batches in parallel, invalidate, record.

Shape of a load with ``workers`` writer processes (the default for inputs of
8 MB or more on a multi-core machine; benchmarks/bench_load.py measures it
against threads)::

    parent: read 512 KB blocks ► queue ──► writer process x N: parse + validate,
            checkpoint, rejects,             dedupe, BatchWriteItem x T threads,
            progress           ◄── results ◄ invalidate touched restaurants

With ``workers=1`` the same steps run in this process. Memory is bounded by the
blocks in flight (two per writer, two queued per writer, one being read: about
3 MB of input with two writers), whatever the file size. The parent never
imports an AWS SDK when writer processes run: the first writer checks the table.

Order: within a writer, a block's batches are submitted only after the
previous block's batches finished, so with ``workers=1`` duplicate keys are
applied strictly in file order (last line wins). With several writers, blocks
run concurrently and a key repeated in *different* blocks has no defined
winner; inside one block the last line always wins.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cachewarm.errors import CachewarmError, TableNotFoundError
from cachewarm.settings import Settings, get_settings
from loaders.checkpoint import Checkpoint
from loaders.client import ensure_table, writer_client
from loaders.errors import EmptyInputError, LoadFailed, StillUnprocessed
from loaders.invalidate import Invalidator, settings_engine_factory
from loaders.reader import BLOCK_BYTES, Block, Source, iter_blocks, open_source
from loaders.report import BlockResult, LoadReport, RejectsFile
from loaders.validate import Item, Reject, decode_text, parse_line
from loaders.writer import BatchOutcome, BatchWriter, batches

#: Writer processes for inputs of at least SMALL_INPUT bytes. Measured on the
#: 2-core reference machine against dynalite (benchmarks/bench_load.py records
#: it every run, 50k lines), four runs: 1 process x 8 threads did 3,840 / 4,410 /
#: 4,696 / 4,118 items/s, 2 processes x 4 threads 3,871 / 4,248 / 3,996 / 5,198:
#: a tie within the shared machine's noise, at 68 MB instead of 154 MB. The
#: writers wait on DynamoDB, so threads suffice; --workers N spreads a load over
#: N processes where CPU is free.
DEFAULT_WORKERS = 1
#: Concurrent BatchWriteItem requests per writer process.
DEFAULT_THREADS = 8
#: Below this, starting writer processes costs more than it saves.
SMALL_INPUT = 8 << 20


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB since it started.

    Read from /proc's VmHWM where there is one: ``getrusage``'s ``ru_maxrss``
    survives ``execve`` on Linux, so a process spawned by a large parent would
    report the parent's size as its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@dataclass(frozen=True)
class Progress:
    """A snapshot for progress displays."""

    done_bytes: int
    total_bytes: int
    lines: int
    written: int
    rejected: int
    elapsed: float
    resumed_lines: int = 0

    @property
    def fraction(self) -> float:
        """Share of the input handled, 0..1."""
        return min(1.0, self.done_bytes / self.total_bytes) if self.total_bytes else 1.0

    @property
    def items_per_second(self) -> float:
        """Lines handled per second by this run."""
        return (self.lines - self.resumed_lines) / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Estimated seconds left, or None before there is a rate."""
        done = self.done_bytes
        if self.elapsed <= 0 or done <= 0 or self.fraction >= 1.0:
            return None if self.fraction < 1.0 else 0.0
        return self.elapsed * (self.total_bytes - done) / done


# -- one writer: blocks in, results out ---------------------------------------------


@dataclass
class _Prepared:
    block: Block
    unique: list[Item]
    superseded: dict[tuple[str, str], list[Item]]
    rejects: list[Reject]


@dataclass
class _Pending:
    prepared: _Prepared
    futures: list[Future[BatchOutcome]] = field(default_factory=list)


class BlockWriter:
    """Turns blocks into results: validate, dedupe, write batches on a thread pool, invalidate."""

    def __init__(self, writer: BatchWriter, *, threads: int, invalidator: Invalidator | None):
        self.writer = writer
        self.invalidator = invalidator
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="cachewarm-writer")

    def prepare(self, block: Block) -> _Prepared:
        """Validate and dedupe a block's lines (CPU only; overlaps the previous block's writes)."""
        items: list[Item] = []
        rejects: list[Reject] = []
        for number, raw in enumerate(block.lines, start=block.first_line):
            parsed = parse_line(raw, number)
            (items if isinstance(parsed, Item) else rejects).append(parsed)  # type: ignore[arg-type]
        latest: dict[tuple[str, str], Item] = {}
        superseded: dict[tuple[str, str], list[Item]] = {}
        for item in items:
            previous = latest.pop(item.key, None)
            if previous is not None:
                superseded.setdefault(item.key, []).append(previous)
            latest[item.key] = item
        return _Prepared(block, list(latest.values()), superseded, rejects)

    def submit(self, prepared: _Prepared) -> _Pending:
        """Start writing a prepared block's batches."""
        pending = _Pending(prepared)
        for batch in batches(prepared.unique):
            pending.futures.append(self.pool.submit(self.writer.write, batch))
        return pending

    def finish(self, pending: _Pending) -> tuple[BlockResult, set[str]]:
        """Wait for a block's batches; return its result and the restaurants to invalidate."""
        prepared = pending.prepared
        block = prepared.block
        rejects = list(prepared.rejects)
        retries = 0
        try:
            for future in pending.futures:
                outcome = future.result()
                rejects += outcome.rejects
                retries += outcome.retries
        except BaseException:
            for future in pending.futures:
                future.cancel()
            raise
        refused = {r.line for r in rejects}
        if prepared.superseded and refused:
            # A line overwritten by a later line that DynamoDB refused was not written either.
            for item in prepared.unique:
                if item.line in refused:
                    for lost in prepared.superseded.get(item.key, []):
                        rejects.append(Reject(lost.line, f"same key as line {item.line}, which DynamoDB refused",
                                              decode_text(lost.raw)))
        rejects.sort(key=lambda r: r.line)
        names = {item.restaurant for item in prepared.unique if item.restaurant and item.line not in refused}
        result = BlockResult(
            index=block.index, first_line=block.first_line, lines=len(block.lines),
            written=len(block.lines) - len(rejects),
            duplicates=sum(len(lost) for lost in prepared.superseded.values()),
            rejects=rejects, retries=retries, nbytes=block.nbytes, source_bytes=block.source_bytes,
        )
        return result, names

    def invalidate(self, result: BlockResult, names: set[str]) -> None:
        """Write-around: invalidate what the block touched (after its writes)."""
        if self.invalidator is not None and names:
            result.invalidated, result.invalidation_skipped = self.invalidator(names)

    def close(self) -> None:
        """Stop the thread pool (cancelling batches not started)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def write_blocks(blocks: Iterable[Block], writer: BlockWriter) -> Iterator[BlockResult]:
    """Write blocks in order, one block's batches in flight at a time, overlapping the CPU work.

    While block k's batches are written, block k+1 is parsed; block k+1's
    batches start only once block k's finished (so a key repeated across
    blocks keeps file order); block k's restaurants are invalidated while
    block k+1 is written.
    """
    pending: _Pending | None = None
    for block in blocks:
        prepared = writer.prepare(block)
        finished = writer.finish(pending) if pending is not None else None
        pending = writer.submit(prepared)
        if finished is not None:
            writer.invalidate(*finished)
            yield finished[0]
    if pending is not None:
        result, names = writer.finish(pending)
        writer.invalidate(result, names)
        yield result


def make_block_writer(settings: Settings, *, threads: int, invalidate: bool) -> BlockWriter:
    """A BlockWriter wired to this process's clients."""
    writer = BatchWriter(writer_client(settings), settings.table_name)
    invalidator = Invalidator(settings_engine_factory(settings)) if invalidate else None
    return BlockWriter(writer, threads=threads, invalidator=invalidator)


# -- writer processes ------------------------------------------------------------------


def _writer_process(settings: Settings, threads: int, invalidate: bool, todo: Any, done: Any,
                    table_check: str | None) -> None:
    """Entry point of a writer process: blocks from ``todo``, results to ``done``.

    ``table_check`` ("describe" or "create") makes this writer check the table
    before saying it is ready, so the parent never loads an AWS SDK itself.
    """
    # Ctrl-C reaches the whole process group; the parent decides, and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    writer: BlockWriter | None = None
    try:
        writer = make_block_writer(settings, threads=threads, invalidate=invalidate)
        if table_check:
            ensure_table(settings, create=table_check == "create")
        done.put(("ready", None))

        def blocks() -> Iterator[Block]:
            while (block := todo.get()) is not None:
                yield block

        for result in write_blocks(blocks(), writer):
            done.put(("ok", result))
        done.put(("exit", peak_rss_mb()))
    except CachewarmError as exc:
        done.put(("error", type(exc).__name__, str(exc), exc.exit_code))
    except BaseException as exc:  # anything else still ends as one line in the parent
        done.put(("error", type(exc).__name__, f"{type(exc).__name__}: {exc}", 1))
    finally:
        if writer is not None:
            writer.close()


def _rebuild_error(kind: str, message: str, exit_code: int, settings: Settings) -> CachewarmError:
    if kind == "TableNotFoundError":
        return TableNotFoundError(settings.table_name)
    if kind == "StillUnprocessed":
        return StillUnprocessed(message)
    error = LoadFailed(message)
    error.exit_code = exit_code
    return error


class _ProcessPool:
    """Writer processes fed through bounded queues (spawned: no inherited clients or threads)."""

    def __init__(self, settings: Settings, *, workers: int, threads: int, invalidate: bool, create_table: bool):
        self.settings = settings
        ctx = multiprocessing.get_context("spawn")
        self.todo = ctx.Queue(maxsize=workers * 2)
        self.done = ctx.Queue()
        check = "create" if create_table else "describe"
        self.procs = [
            ctx.Process(target=_writer_process,
                        args=(settings, threads, invalidate, self.todo, self.done, check if i == 0 else None),
                        name=f"cachewarm-writer-{i}", daemon=True)
            for i in range(workers)
        ]
        self.ready = 0
        self.outstanding = 0
        self.writer_peaks: list[float] = []  # each writer's peak RSS in MB, reported as it exits
        for proc in self.procs:
            proc.start()

    def wait_ready(self) -> None:
        """Block until every writer has started (and the first has checked the table)."""
        while self.ready < len(self.procs):
            self._drain(lambda result: None, wait=True)

    def run(self, blocks: Iterable[Block], on_result: Callable[[BlockResult], None]) -> None:
        """Feed every block, hand each result to ``on_result`` as it arrives, then stop the writers."""
        for block in blocks:
            self._put(block, on_result)
            self.outstanding += 1
        for _ in self.procs:
            self._put(None, on_result)
        while self.outstanding:
            self._drain(on_result, wait=True)
        for proc in self.procs:
            proc.join(10)
        self._drain(on_result, wait=False)  # the writers' exit reports

    def _put(self, item: Block | None, on_result: Callable[[BlockResult], None]) -> None:
        while True:
            try:
                self.todo.put(item, timeout=0.1)
                return
            except queue.Full:
                self._drain(on_result, wait=False)

    def _drain(self, on_result: Callable[[BlockResult], None], *, wait: bool) -> None:
        got = False
        while True:
            try:
                message = self.done.get(timeout=0.2) if wait and not got else self.done.get_nowait()
            except queue.Empty:
                break
            got = True
            if message[0] == "ok":
                self.outstanding -= 1
                on_result(message[1])
            elif message[0] == "exit":
                self.writer_peaks.append(message[1])
            elif message[0] == "ready":
                self.ready += 1
            else:
                _, kind, text, code = message
                raise _rebuild_error(kind, text, code, self.settings)
        if not got:
            self._check_alive()

    def _check_alive(self) -> None:
        if not self.outstanding and self.ready == len(self.procs):
            return
        for proc in self.procs:
            if proc.exitcode not in (None, 0):
                raise LoadFailed(f"writer process {proc.name} exited unexpectedly (exit code {proc.exitcode})")
        if (self.outstanding or self.ready < len(self.procs)) and all(
                proc.exitcode is not None for proc in self.procs):
            raise LoadFailed(f"writer processes stopped with {self.outstanding} blocks unfinished")

    def close(self) -> None:
        """Stop every writer process (SIGTERM, then SIGKILL)."""
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for q in (self.todo, self.done):
            q.cancel_join_thread()
            q.close()


# -- the public entry points -------------------------------------------------------------


def default_paths(source_uri: str) -> tuple[Path, Path]:
    """Default rejects and checkpoint paths: in the current directory, named after the input.

    Not next to the input: it may be read-only, shared, or in S3.
    """
    name = Path(source_uri.rstrip("/")).name or "input"
    return Path.cwd() / f"{name}.rejects.jsonl", Path.cwd() / f"{name}.checkpoint"


def load_file(
    path: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    workers: int | None = None,
    threads: int | None = None,
    create_table: bool = False,
    resume: bool = False,
    rejects: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
    invalidate: bool = True,
    block_bytes: int = BLOCK_BYTES,
) -> LoadReport:
    """Load a JSON-lines file (local path or ``s3://`` URI, plain or gzip) into the table.

    Every line is either written or rejected: the report counts both, carries
    a sample of rejects, and every reject (line number, reason, original text)
    is in the rejects file (default ``./<name>.rejects.jsonl``, created only
    if something is rejected). A checkpoint (default ``./<name>.checkpoint``)
    records finished blocks while the load runs and is deleted when it ends;
    ``resume=True`` skips the blocks it lists.

    ``workers``: writer processes (default: 1 for inputs under 8 MB or on one
    CPU, else :data:`DEFAULT_WORKERS`); ``threads``: concurrent batch requests per
    writer (default :data:`DEFAULT_THREADS`). ``invalidate``: write-around
    invalidation of touched restaurants' cached summaries.

    Raises :class:`~loaders.errors.InputError` (missing or unreadable input),
    :class:`~loaders.errors.EmptyInputError`,
    :class:`~cachewarm.errors.TableNotFoundError` (unless ``create_table``),
    :class:`~loaders.errors.CheckpointError`, or
    :class:`~loaders.errors.LoadFailed` when a load stops midway (its
    checkpoint is kept for ``resume``). Rejected lines never raise.
    """
    settings = settings or get_settings()
    source = open_source(path, region=settings.aws_region)
    if source.size == 0:
        raise EmptyInputError(f"{source.uri} is empty: there is nothing to load")
    threads = threads or DEFAULT_THREADS
    if workers is None:
        workers = 1 if source.size < SMALL_INPUT else min(DEFAULT_WORKERS, os.cpu_count() or 1)
    workers = max(1, workers)

    default_rejects, default_checkpoint = default_paths(source.uri)
    rejects_file = RejectsFile(rejects or default_rejects, append=resume)
    ckpt = Checkpoint(checkpoint or default_checkpoint, source.identity(), block_bytes)
    done_before = ckpt.load() if resume else {}

    report = LoadReport(source=source.uri, workers=workers, threads=threads)
    start = time.perf_counter()
    done_bytes = 0

    def emit() -> None:
        if progress is not None:
            progress(Progress(done_bytes, source.size, report.lines, report.written, report.rejected,
                              time.perf_counter() - start, report.resumed_lines))

    def on_result(result: BlockResult) -> None:
        nonlocal done_bytes
        rejects_file.write(result.rejects)  # before the checkpoint: a recorded block's rejects are on disk
        ckpt.record(result)
        report.add(result)
        done_bytes += result.source_bytes
        emit()

    def pending_blocks(stream: Any) -> Iterator[Block]:
        nonlocal done_bytes
        for block in iter_blocks(stream, block_bytes=block_bytes):
            earlier = done_before.get(block.index)
            if earlier is None:
                yield block
                continue
            # Finished by an earlier run: count it, do not write it again.
            report.lines += earlier.lines
            report.written += earlier.written
            report.rejected += ckpt.rejected_counts.get(block.index, 0)
            report.duplicates += earlier.duplicates
            report.resumed_lines += earlier.lines
            done_bytes += block.source_bytes
            emit()

    pool: _ProcessPool | None = None
    writer: BlockWriter | None = None
    finished = False
    try:
        # The table is checked (or created) before a line is read. With writer processes the
        # first writer does it, so this process never loads an AWS SDK (about 30 MB less).
        if workers == 1:
            ensure_table(settings, create=create_table)
            writer = make_block_writer(settings, threads=threads, invalidate=invalidate)
        else:
            pool = _ProcessPool(settings, workers=workers, threads=threads, invalidate=invalidate,
                                create_table=create_table)
            pool.wait_ready()
        ckpt.open(resume=resume)
        try:
            with source.open() as stream:
                if writer is not None:
                    for result in write_blocks(pending_blocks(stream), writer):
                        on_result(result)
                else:
                    assert pool is not None
                    pool.run(pending_blocks(stream), on_result)
            finished = True
        except (LoadFailed, StillUnprocessed, TableNotFoundError) as exc:
            raise _with_resume_hint(exc, ckpt, source) from None
    finally:
        if writer is not None:
            writer.close()
        if pool is not None:
            pool.close()
        rejects_file.close()
        if finished:
            ckpt.remove()
        else:
            ckpt.close()
    if report.lines == 0:
        raise EmptyInputError(f"{source.uri} holds no lines: there is nothing to load")
    report.seconds = time.perf_counter() - start
    report.peak_rss_mb = round(peak_rss_mb() + (sum(pool.writer_peaks) if pool is not None else 0.0), 1)
    if rejects_file.used:
        report.rejects_path = str(rejects_file.path)
    emit()
    return report


def _with_resume_hint(exc: CachewarmError, ckpt: Checkpoint, source: Source) -> CachewarmError:
    error = LoadFailed(f"{exc} (finished blocks are recorded in {ckpt.path}; "
                       f"re-run with --resume to continue where this load stopped)")
    error.exit_code = exc.exit_code
    return error


def load_range(
    path: str,
    *,
    start: int,
    end: int,
    first_line: int,
    settings: Settings | None = None,
    threads: int | None = None,
    rejects: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
    invalidate: bool = True,
) -> LoadReport:
    """Load one line-aligned byte range of a file in this process (what a Celery chunk runs).

    ``start``/``end`` are offsets in the decompressed input and ``first_line``
    the number of the line at ``start``. Rejects go to ``rejects`` (replaced,
    so a re-run of the same range does not duplicate them). ``progress`` gets
    the number of lines done so far after each block.
    """
    settings = settings or get_settings()
    threads = threads or DEFAULT_THREADS
    source = open_source(path, region=settings.aws_region)
    report = LoadReport(source=source.uri, workers=1, threads=threads)
    rejects_file = RejectsFile(rejects) if rejects else None
    started = time.perf_counter()
    writer = make_block_writer(settings, threads=threads, invalidate=invalidate)
    try:
        with source.open(start) as stream:
            blocks = iter_blocks(stream, start=start, end=end, first_line=first_line)
            for result in write_blocks(blocks, writer):
                if rejects_file is not None:
                    rejects_file.write(result.rejects)
                report.add(result)
                if progress is not None:
                    progress(report.lines)
    finally:
        writer.close()
        if rejects_file is not None:
            rejects_file.close()
    report.seconds = time.perf_counter() - started
    if rejects_file is not None and rejects_file.used:
        report.rejects_path = str(rejects_file.path)
    return report

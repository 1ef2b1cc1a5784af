"""The load pipeline's entry points: :func:`load_file` (a whole input) and :func:`load_range` (one chunk).

A load reads the input in blocks of whole lines (:mod:`loaders.reader`), has
each block validated, deduplicated, written and invalidated
(:mod:`loaders.block_writer`) in this process or, with ``workers`` > 1, in
writer processes (:mod:`loaders.processes`), and records every finished block:
its rejects in the rejects file, then the block in the checkpoint, then its
counts in the report (:mod:`loaders.report`, :mod:`loaders.checkpoint`).

The default is one process (:data:`~loaders.defaults.DEFAULT_WORKERS`, whatever
the input's size): the writers wait on DynamoDB, so threads suffice. Memory
stays bounded by the blocks in flight, whatever the file size.

Order: with one process, duplicate keys are applied strictly in file order
(last line wins). With several writer processes, blocks run concurrently and a
key repeated in *different* blocks has no defined winner; inside one block the
last line always wins.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from cachewarm.errors import CachewarmError, TableNotFoundError
from cachewarm.settings import Settings, get_settings
from loaders.block_writer import InProcessWriter
from loaders.checkpoint import Checkpoint
from loaders.defaults import DEFAULT_THREADS, DEFAULT_WORKERS
from loaders.errors import EmptyInputError, LoadFailed, StillUnprocessed
from loaders.processes import WriterProcesses
from loaders.progress import Progress, peak_rss_mb
from loaders.reader import BLOCK_BYTES, Block, Source, iter_blocks, open_source
from loaders.report import BlockResult, LoadReport, RejectsFile

__all__ = ["DEFAULT_THREADS", "DEFAULT_WORKERS", "Progress", "default_paths", "load_file", "load_range"]


def default_paths(source_uri: str) -> tuple[Path, Path]:
    """Default rejects and checkpoint paths: in the current directory, named after the input.

    Not next to the input: it may be read-only, shared, or in S3.
    """
    name = Path(source_uri.rstrip("/")).name or "input"
    return Path.cwd() / f"{name}.rejects.jsonl", Path.cwd() / f"{name}.checkpoint"


class _Load:
    """The running state of one :func:`load_file`: its report, progress, rejects file and checkpoint."""

    def __init__(self, source: Source, report: LoadReport, *, rejects: RejectsFile, checkpoint: Checkpoint,
                 resumed: Mapping[int, Mapping[str, int]], progress: Callable[[Progress], None] | None):
        self.source = source
        self.report = report
        self.rejects = rejects
        self.checkpoint = checkpoint
        self.resumed = resumed
        self.progress = progress
        self.started = time.perf_counter()
        self.done_bytes = 0

    def emit(self) -> None:
        """Tell the progress display where the load is."""
        if self.progress is not None:
            report = self.report
            self.progress(Progress(self.done_bytes, self.source.size, report.lines, report.written,
                                   report.rejected, time.perf_counter() - self.started, report.resumed_lines))

    def pending(self, blocks: Iterable[Block]) -> Iterator[Block]:
        """The blocks still to write; those an earlier run finished are counted, not written again."""
        for block in blocks:
            earlier = self.resumed.get(block.index)
            if earlier is None:
                yield block
                continue
            self.report.add_resumed(earlier)
            self.done_bytes += block.source_bytes
            self.emit()

    def record(self, result: BlockResult) -> None:
        """A block finished: its rejects, then the checkpoint (a recorded block's rejects are on disk)."""
        self.rejects.write(result.rejects)
        self.checkpoint.record(result)
        self.report.add(result)
        self.done_bytes += result.source_bytes
        self.emit()

    def run(self, writers: InProcessWriter | WriterProcesses, settings: Settings, *, create_table: bool,
            resume: bool, block_bytes: int) -> LoadReport:
        """Check the table, write every pending block, and finish the report."""
        finished = False
        try:
            # The table is checked (or created) before a line is read; with writer
            # processes, by one of them, so this process never loads an AWS SDK.
            writers.check_table(create=create_table)
            self.checkpoint.open(resume=resume)
            try:
                with self.source.open() as stream:
                    writers.run(self.pending(iter_blocks(stream, block_bytes=block_bytes)), self.record)
                finished = True
            except (LoadFailed, StillUnprocessed, TableNotFoundError) as exc:
                raise _with_resume_hint(exc, self.checkpoint) from None
        finally:
            writers.close()
            self.rejects.close()
            if finished:
                self.checkpoint.remove()
            else:
                self.checkpoint.close()
        report = self.report
        if report.lines == 0:
            raise EmptyInputError(f"{self.source.uri} holds no lines: there is nothing to load")
        report.seconds = time.perf_counter() - self.started
        report.peak_rss_mb = round(peak_rss_mb() + writers.writers_peak_rss_mb, 1)
        if self.rejects.used:
            report.rejects_path = str(self.rejects.path)
        self.emit()
        return report


def _with_resume_hint(exc: CachewarmError, ckpt: Checkpoint) -> CachewarmError:
    error = LoadFailed(f"{exc} (finished blocks are recorded in {ckpt.path}; "
                       f"re-run with --resume to continue where this load stopped)")
    error.exit_code = exc.exit_code
    return error


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

    ``workers``: writer processes (default :data:`~loaders.defaults.DEFAULT_WORKERS`,
    that is 1: the load runs in this process); ``threads``: concurrent batch
    requests per writer (default :data:`~loaders.defaults.DEFAULT_THREADS`).
    ``invalidate``: write-around invalidation of touched restaurants' cached
    summaries. The report's ``peak_rss_mb`` is this process's peak plus each
    writer process's.

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
    workers = max(1, DEFAULT_WORKERS if workers is None else workers)

    default_rejects, default_checkpoint = default_paths(source.uri)
    ckpt = Checkpoint(checkpoint or default_checkpoint, source.identity(), block_bytes)
    load = _Load(source, LoadReport(source=source.uri, workers=workers, threads=threads),
                 rejects=RejectsFile(rejects or default_rejects, append=resume), checkpoint=ckpt,
                 resumed=ckpt.load() if resume else {}, progress=progress)
    writers = (InProcessWriter(settings, threads=threads, invalidate=invalidate) if workers == 1 else
               WriterProcesses(settings, workers=workers, threads=threads, invalidate=invalidate))
    return load.run(writers, settings, create_table=create_table, resume=resume, block_bytes=block_bytes)


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

    def record(result: BlockResult) -> None:
        if rejects_file is not None:
            rejects_file.write(result.rejects)
        report.add(result)
        if progress is not None:
            progress(report.lines)

    writer = InProcessWriter(settings, threads=threads, invalidate=invalidate)
    try:
        with source.open(start) as stream:
            writer.run(iter_blocks(stream, start=start, end=end, first_line=first_line), record)
    finally:
        writer.close()
        if rejects_file is not None:
            rejects_file.close()
    report.seconds = time.perf_counter() - started
    if rejects_file is not None and rejects_file.used:
        report.rejects_path = str(rejects_file.path)
    return report

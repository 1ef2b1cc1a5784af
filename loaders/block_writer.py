"""One block of lines, from bytes to a result: validate, dedupe, write the batches on threads, invalidate.

:class:`BlockWriter` does it for one process; :func:`write_blocks` runs it over
a stream of blocks with the CPU work of one block overlapping the writes of
the previous one; :class:`InProcessWriter` is the one-process load that
``load_file(workers=1)`` and ``load_range`` run.

Order: a block's batches are submitted only after the previous block's batches
finished, so in one process duplicate keys are applied strictly in file order
(last line wins); inside a block, :func:`~loaders.writer.dedupe` keeps the last line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from cachewarm.settings import Settings
from loaders.client import ensure_table, writer_client
from loaders.invalidate import Invalidator, settings_engine_factory
from loaders.reader import Block
from loaders.report import BlockResult
from loaders.validate import Item, Reject, decode_text, parse_line
from loaders.writer import BatchOutcome, BatchWriter, batches, dedupe


@dataclass
class Prepared:
    """A block's lines, validated and deduplicated, ready to write."""

    block: Block
    unique: list[Item]
    superseded: dict[tuple[str, str], list[Item]]
    rejects: list[Reject]


@dataclass
class Pending:
    """A prepared block whose batches are being written."""

    prepared: Prepared
    futures: list[Future[BatchOutcome]] = field(default_factory=list)


class BlockWriter:
    """Turns blocks into results: validate, dedupe, write batches on a thread pool, invalidate."""

    def __init__(self, writer: BatchWriter, *, threads: int, invalidator: Invalidator | None):
        self.writer = writer
        self.invalidator = invalidator
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="cachewarm-writer")

    def prepare(self, block: Block) -> Prepared:
        """Validate and dedupe a block's lines (CPU only; overlaps the previous block's writes)."""
        items: list[Item] = []
        rejects: list[Reject] = []
        for number, raw in enumerate(block.lines, start=block.first_line):
            parsed = parse_line(raw, number)
            if isinstance(parsed, Item):
                items.append(parsed)
            else:
                rejects.append(parsed)
        unique, superseded = dedupe(items)
        return Prepared(block, unique, superseded, rejects)

    def submit(self, prepared: Prepared) -> Pending:
        """Start writing a prepared block's batches."""
        pending = Pending(prepared)
        for batch in batches(prepared.unique):
            pending.futures.append(self.pool.submit(self.writer.write, batch))
        return pending

    def finish(self, pending: Pending) -> tuple[BlockResult, set[str]]:
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

    def write(self, block: Block) -> BlockResult:
        """The whole of one block, start to end (what a writer process does with each block it gets)."""
        result, names = self.finish(self.submit(self.prepare(block)))
        self.invalidate(result, names)
        return result

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
    pending: Pending | None = None
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
    """A BlockWriter wired to this process's clients (built lazily: nothing connects here)."""
    writer = BatchWriter(writer_client(settings), settings.table_name)
    invalidator = Invalidator(settings_engine_factory(settings)) if invalidate else None
    return BlockWriter(writer, threads=threads, invalidator=invalidator)


class InProcessWriter:
    """A load's writing done in this process (the counterpart of :class:`loaders.processes.WriterProcesses`)."""

    #: Memory of writer processes, added to this process's in the report: none here.
    writers_peak_rss_mb = 0.0

    def __init__(self, settings: Settings, *, threads: int, invalidate: bool):
        self.settings = settings
        self.writer = make_block_writer(settings, threads=threads, invalidate=invalidate)

    def check_table(self, *, create: bool) -> None:
        """Create the table, or check that it exists (TableNotFoundError)."""
        ensure_table(self.settings, create=create)

    def run(self, blocks: Iterable[Block], on_result: Callable[[BlockResult], None]) -> None:
        """Write every block in file order, handing each result to ``on_result``."""
        for result in write_blocks(blocks, self.writer):
            on_result(result)

    def close(self) -> None:
        """Stop the writer threads."""
        self.writer.close()

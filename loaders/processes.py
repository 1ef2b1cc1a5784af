"""Writer processes: a load's blocks written by ``workers`` processes of a ``ProcessPoolExecutor``.

Shape of a load with ``--workers N`` (N > 1)::

    parent: read 512 KB blocks ─► executor ─► writer process x N: parse + validate,
            checkpoint, rejects,               dedupe, BatchWriteItem x T threads,
            progress            ◄── results ◄─ invalidate touched restaurants

The processes are spawned (no inherited clients, locks or threads); each one's
initializer builds its :class:`~loaders.block_writer.BlockWriter`, and the first
task sent checks (or creates) the table, so the parent never imports an AWS SDK
(about 30 MB less). Memory is bounded by the blocks in flight: at most two per
writer (one being written, one waiting) plus the one being read, whatever the
file size.

Errors cross back pickled, as they were raised: the project's exceptions keep
their type, message, attributes and ``exit_code`` (``CachewarmError.__reduce__``);
anything else becomes a :class:`~loaders.errors.LoadFailed` naming it, so that it
too ends as one line with exit code 1. A writer process that dies outright
breaks the pool, which is reported as a ``LoadFailed``.

Order: each process writes one whole block at a time, and blocks run
concurrently in different processes, so a key repeated in *different* blocks
has no defined winner; inside one block the last line always wins. (With
``workers=1`` the load runs in one process, in strict file order.)
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple

from cachewarm.errors import CachewarmError
from cachewarm.settings import Settings
from loaders.block_writer import BlockWriter, make_block_writer
from loaders.client import ensure_table
from loaders.errors import LoadFailed
from loaders.progress import peak_rss_mb
from loaders.reader import Block
from loaders.report import BlockResult

#: Blocks submitted per writer process and not yet finished: one being written, one waiting.
IN_FLIGHT_PER_WRITER = 2


class Reply(NamedTuple):
    """What a writer process sends back for one task: the result, and who did it at what memory."""

    result: BlockResult | None
    pid: int
    peak_rss_mb: float


class _Writer:
    """The state of one writer process, built by its initializer (a module-level singleton there)."""

    settings: Settings | None = None
    writer: BlockWriter | None = None
    startup_error: CachewarmError | None = None


def _start(settings: Settings, threads: int, invalidate: bool) -> None:
    """Initializer of each writer process: build its BlockWriter.

    An error is kept and raised by the process's first task: an initializer that
    raises breaks the whole pool with a message that no longer names the cause.
    """
    # Ctrl-C reaches the whole process group; the parent decides, and stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _Writer.settings = settings
    try:
        _Writer.writer = make_block_writer(settings, threads=threads, invalidate=invalidate)
    except Exception as exc:
        _Writer.startup_error = _reportable(exc)


def _reportable(exc: Exception) -> CachewarmError:
    if isinstance(exc, CachewarmError):
        return exc
    return LoadFailed(f"{type(exc).__name__}: {exc}")


def _reply(result: BlockResult | None) -> Reply:
    return Reply(result, os.getpid(), peak_rss_mb())


def _check_table(create: bool) -> Reply:
    """Task: create the table, or check that it exists (TableNotFoundError)."""
    if _Writer.startup_error is not None:
        raise _Writer.startup_error
    assert _Writer.settings is not None
    try:
        ensure_table(_Writer.settings, create=create)
    except Exception as exc:
        raise _reportable(exc) from None
    return _reply(None)


def _write(block: Block) -> Reply:
    """Task: write one block, start to end."""
    if _Writer.startup_error is not None:
        raise _Writer.startup_error
    assert _Writer.writer is not None
    try:
        return _reply(_Writer.writer.write(block))
    except Exception as exc:
        raise _reportable(exc) from None


class WriterProcesses:
    """``workers`` spawned writer processes (a ``ProcessPoolExecutor``) and the blocks in flight to them."""

    def __init__(self, settings: Settings, *, workers: int, threads: int, invalidate: bool):
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start, initargs=(settings, threads, invalidate),
        )
        self._peaks: dict[int, float] = {}  # each writer's peak RSS in MB, from its latest reply
        self._finished = False

    @property
    def writers_peak_rss_mb(self) -> float:
        """The writer processes' peak resident memory, summed."""
        return sum(self._peaks.values())

    def check_table(self, *, create: bool) -> None:
        """Have a writer create the table or check that it exists, before any block is read."""
        self._take(self.executor.submit(_check_table, create))

    def run(self, blocks: Iterable[Block], on_result: Callable[[BlockResult], None]) -> None:
        """Send every block, handing each result to ``on_result`` as it arrives (in any order)."""
        limit = self.workers * IN_FLIGHT_PER_WRITER
        in_flight: set[Future[Reply]] = set()
        for block in blocks:
            while len(in_flight) >= limit:
                in_flight = self._collect(in_flight, on_result)
            in_flight.add(self.executor.submit(_write, block))
        while in_flight:
            in_flight = self._collect(in_flight, on_result)
        self._finished = True

    def _collect(self, in_flight: set[Future[Reply]], on_result: Callable[[BlockResult], None]
                 ) -> set[Future[Reply]]:
        done, still = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            result = self._take(future)
            assert result is not None
            on_result(result)
        return still

    def _take(self, future: Future[Reply]) -> BlockResult | None:
        try:
            reply = future.result()
        except BrokenProcessPool as exc:
            raise LoadFailed(f"a writer process stopped unexpectedly ({exc})") from None
        self._peaks[reply.pid] = max(self._peaks.get(reply.pid, 0.0), reply.peak_rss_mb)
        return reply.result

    def close(self) -> None:
        """Stop the writer processes: at once when the load failed or was interrupted."""
        if self._finished:
            self.executor.shutdown(wait=True)
        else:
            # Blocks in flight are abandoned: they are not in the checkpoint, so --resume writes them again.
            _terminate_workers(self.executor)


def _terminate_workers(executor: ProcessPoolExecutor) -> None:
    """Shut ``executor`` down and SIGTERM its workers (shutdown alone lets each finish its current block).

    Python 3.14 has ``ProcessPoolExecutor.terminate_workers`` (python/cpython#128041).
    Before it, the way the issue describes is the executor's private ``_processes``
    (checked on 3.11 and 3.12), copied before ``shutdown`` clears it, as 3.14 does.
    Fails loudly if neither exists.
    """
    terminate = getattr(executor, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    if not hasattr(executor, "_processes"):
        raise RuntimeError("ProcessPoolExecutor has neither terminate_workers() nor _processes: "
                           "see python/cpython#128041 and update loaders/processes.py")
    processes = list((executor._processes or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join(5)

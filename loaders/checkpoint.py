"""Checkpoints for ``load --resume``: which blocks of which input are finished.

A checkpoint is a JSON-lines file. The first line identifies the input (path,
size and modification time, or S3 ETag) and the block size; each further line
records one finished block with its counts. Blocks finish out of order when
several writers run, so the record is a set, not a high-water mark.

A block is recorded only after every line of it is written or rejected (and its
rejects are in the rejects file), so resuming never skips unwritten lines. A
crash can at worst re-write the blocks that were in flight: puts are idempotent,
so that costs time, not correctness.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from loaders.errors import CheckpointError
from loaders.report import BlockResult

FORMAT = "cachewarm-load-checkpoint"
VERSION = 1
#: The counts a block's record keeps: what a resumed run adds to its report for a block it skips
#: (retries and invalidations belong to the run that did them).
RECORDED = ("lines", "written", "rejected", "duplicates")


class Checkpoint:
    """Append-only record of finished blocks."""

    def __init__(self, path: str | os.PathLike[str], identity: dict[str, Any], block_bytes: int):
        self.path = Path(path)
        self.header = {"format": FORMAT, "version": VERSION, "input": identity, "block_bytes": block_bytes}
        # Finished blocks: index -> their RECORDED counts (their rejects are in the rejects file already).
        self.done: dict[int, dict[str, int]] = {}
        self._handle: IO[str] | None = None

    def load(self) -> dict[int, dict[str, int]]:
        """Read an existing checkpoint for resuming; raise CheckpointError if it is for other input.

        Returns the finished blocks, index -> counts (:data:`RECORDED`). A
        missing file means nothing was done yet.
        """
        if not self.path.exists():
            return {}
        try:
            with open(self.path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {exc.strerror or exc}") from None
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise CheckpointError(f"{self.path} is not a cachewarm load checkpoint; delete it or pass another "
                                  "--checkpoint")
        if header.get("input") != self.header["input"] or header.get("block_bytes") != self.header["block_bytes"]:
            raise CheckpointError(
                f"checkpoint {self.path} belongs to another input (or the file changed since): "
                f"{header.get('input')}; run without --resume to start over"
            )
        for line in lines[1:]:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash: that block simply is not done
            self.done[int(record["block"])] = {name: int(record.get(name, 0)) for name in RECORDED}
        return self.done

    def open(self, *, resume: bool) -> None:
        """Start writing: append when resuming an existing checkpoint, else start a new one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        appending = resume and self.path.exists() and bool(self.done)
        try:
            self._handle = open(self.path, "a" if appending else "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoint {self.path}: {exc.strerror or exc}") from None
        if not appending:
            self._write(self.header)

    def record(self, result: BlockResult) -> None:
        """Mark a block finished."""
        counts = result.counts()
        self._write({"block": result.index, "first_line": result.first_line,
                     **{name: counts[name] for name in RECORDED},
                     "nbytes": result.nbytes, "source_bytes": result.source_bytes})

    def _write(self, record: dict[str, Any]) -> None:
        assert self._handle is not None, "open() the checkpoint first"
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        # Flushed to the OS at once: a killed process (the usual crash) loses nothing recorded.
        self._handle.flush()

    def close(self) -> None:
        """Close the file, keeping it (the load did not finish)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def remove(self) -> None:
        """Close and delete: the load finished, nothing is left to resume."""
        self.close()
        self.path.unlink(missing_ok=True)

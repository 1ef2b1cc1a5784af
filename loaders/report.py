"""What a load did: per block, per run, and the rejects file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders.validate import Reject

#: How many rejects a report carries for printing; all of them go to the rejects file.
SAMPLE_REJECTS = 20


@dataclass
class BlockResult:
    """The outcome of one block of lines (picklable: it crosses process boundaries)."""

    index: int
    first_line: int
    lines: int
    written: int = 0
    duplicates: int = 0
    rejects: list[Reject] = field(default_factory=list)
    retries: int = 0
    invalidated: int = 0
    invalidation_skipped: int = 0
    nbytes: int = 0
    source_bytes: int = 0

    @property
    def rejected(self) -> int:
        """Lines of this block that were not written."""
        return len(self.rejects)


@dataclass
class LoadReport:
    """The outcome of a load. ``ok`` is True only when every line was written."""

    source: str
    lines: int = 0
    written: int = 0
    rejected: int = 0
    duplicates: int = 0  # lines superseded by a later line with the same key (still counted as written)
    resumed_lines: int = 0  # lines an earlier, interrupted run finished (included in the counts above)
    retries: int = 0  # rounds of UnprocessedItems or throttling retried with backoff
    invalidated: int = 0  # restaurant summaries invalidated (write-around)
    invalidation_skipped: int = 0  # names left alone because the cache was unavailable
    seconds: float = 0.0
    workers: int = 1
    threads: int = 1
    rejects_path: str | None = None
    sample_rejects: list[Reject] = field(default_factory=list)
    # Peak resident memory of the loading process plus each writer process, in MB.
    peak_rss_mb: float | None = None

    @property
    def ok(self) -> bool:
        """True when nothing was rejected."""
        return self.rejected == 0

    @property
    def items_per_second(self) -> float:
        """Lines handled per second by this run (resumed lines excluded)."""
        done = self.lines - self.resumed_lines
        return done / self.seconds if self.seconds > 0 else 0.0

    def add(self, result: BlockResult) -> None:
        """Fold one block's outcome into the totals."""
        self.lines += result.lines
        self.written += result.written
        self.rejected += result.rejected
        self.duplicates += result.duplicates
        self.retries += result.retries
        self.invalidated += result.invalidated
        self.invalidation_skipped += result.invalidation_skipped
        room = SAMPLE_REJECTS - len(self.sample_rejects)
        if room > 0:
            self.sample_rejects.extend(result.rejects[:room])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``load --json`` and the Celery result)."""
        return {
            "source": self.source, "lines": self.lines, "written": self.written, "rejected": self.rejected,
            "duplicates": self.duplicates, "resumed_lines": self.resumed_lines, "retries": self.retries,
            "invalidated": self.invalidated, "invalidation_skipped": self.invalidation_skipped,
            "seconds": round(self.seconds, 3), "items_per_second": round(self.items_per_second, 1),
            "workers": self.workers, "threads": self.threads, "peak_rss_mb": self.peak_rss_mb,
            "rejects_path": self.rejects_path,
            "sample_rejects": [r.to_dict() for r in self.sample_rejects], "ok": self.ok,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadReport:
        """Inverse of :meth:`to_dict` (the CLI reads a Celery result with it)."""
        names = {"source", "lines", "written", "rejected", "duplicates", "resumed_lines", "retries",
                 "invalidated", "invalidation_skipped", "seconds", "workers", "threads", "rejects_path",
                 "peak_rss_mb"}
        report = cls(**{k: v for k, v in data.items() if k in names})
        report.sample_rejects = [Reject.from_dict(r) for r in data.get("sample_rejects", [])]
        return report


class RejectsFile:
    """JSON lines ``{"line", "reason", "text"}``, created on the first reject only."""

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False):
        self.path = Path(path)
        self.append = append
        self.count = 0
        self._handle: Any = None

    def write(self, rejects: list[Reject]) -> None:
        """Append rejects (in line order within the call)."""
        if not rejects:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a" if self.append else "w", encoding="utf-8")  # noqa: SIM115
        for reject in rejects:
            self._handle.write(json.dumps(reject.to_dict(), ensure_ascii=False) + "\n")
        self._handle.flush()
        self.count += len(rejects)

    @property
    def used(self) -> bool:
        """True once something was written (or an earlier run's file is being appended to)."""
        return self.count > 0 or (self.append and self.path.exists())

    def close(self) -> None:
        """Close the file if it was opened."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_rejects(path: str | os.PathLike[str]) -> list[Reject]:
    """Every reject recorded in a rejects file (tests and tooling)."""
    with open(path, encoding="utf-8") as handle:
        return [Reject.from_dict(json.loads(line)) for line in handle if line.strip()]

"""What a load did: per block, per run, and the rejects file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from loaders.validate import Reject

#: How many rejects a report carries for printing; all of them go to the rejects file.
SAMPLE_REJECTS = 20


def _count(doc: str) -> Any:
    """A count field of :class:`LoadReport`: summed over blocks, resumed blocks and fanned-out parts."""
    return field(default=0, metadata={"count": True, "doc": doc})


@dataclass
class LoadReport:
    """The outcome of a load. ``ok`` is True only when every line was written.

    The count fields are declared once, here (:func:`_count`); :data:`COUNTS`,
    :meth:`add`, :meth:`combine`, :meth:`to_dict` and :meth:`from_dict` derive
    from them. The field order is the order of ``load --json``.
    """

    source: str
    lines: int = _count("lines of the input handled")
    written: int = _count("lines written")
    rejected: int = _count("lines not written (each is in the rejects file)")
    duplicates: int = _count("lines superseded by a later line with the same key (still counted as written)")
    resumed_lines: int = _count("lines an earlier, interrupted run finished (included in the counts above)")
    retries: int = _count("rounds of UnprocessedItems or throttling retried with backoff")
    invalidated: int = _count("restaurant summaries invalidated (write-around)")
    invalidation_skipped: int = _count("names left alone because the cache was unavailable")
    seconds: float = 0.0
    workers: int = 1
    threads: int = 1
    # Peak resident memory of the loading process plus each writer process, in MB.
    peak_rss_mb: float | None = None
    rejects_path: str | None = None
    sample_rejects: list[Reject] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was rejected."""
        return self.rejected == 0

    @property
    def items_per_second(self) -> float:
        """Lines handled per second by this run (resumed lines excluded)."""
        done = self.lines - self.resumed_lines
        return done / self.seconds if self.seconds > 0 else 0.0

    def add_counts(self, counts: Mapping[str, Any]) -> None:
        """Add every count field found in ``counts`` (a block's, a checkpoint record's, a part's dict)."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + int(counts.get(name, 0)))

    def add(self, result: BlockResult) -> None:
        """Fold one block's outcome into the totals."""
        self.add_counts(result.counts())
        room = SAMPLE_REJECTS - len(self.sample_rejects)
        if room > 0:
            self.sample_rejects.extend(result.rejects[:room])

    def add_resumed(self, counts: Mapping[str, int]) -> None:
        """Fold in a block an earlier run finished (its checkpoint record): counted, not written again."""
        self.add_counts({**counts, "resumed_lines": counts.get("lines", 0)})

    @classmethod
    def combine(cls, source: str, parts: Iterable[Mapping[str, Any]], *, threads: int) -> LoadReport:
        """One report for a load that ran in parts (dicts as :meth:`to_dict` makes them).

        Every count field is summed; the parts' sample rejects are merged in
        line order (capped at :data:`SAMPLE_REJECTS`). ``rejects_path`` stays
        unset (the caller merges the parts' files) and ``workers`` is 0: the
        parts ran on however many processes took them.
        """
        report = cls(source=source, workers=0, threads=threads)
        samples: list[Reject] = []
        for part in parts:
            report.add_counts(part)
            samples += [Reject.from_dict(r) for r in part.get("sample_rejects", [])]
        report.sample_rejects = sorted(samples, key=lambda r: r.line)[:SAMPLE_REJECTS]
        return report

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``load --json`` and the Celery result)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "sample_rejects":
                value = [r.to_dict() for r in value]
            elif f.name == "seconds":
                value = round(value, 3)
            out[f.name] = value
            if f.name == "seconds":
                out["items_per_second"] = round(self.items_per_second, 1)
        out["ok"] = self.ok
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadReport:
        """Inverse of :meth:`to_dict` (the CLI reads a Celery result with it)."""
        names = {f.name for f in fields(cls)} - {"sample_rejects"}
        report = cls(**{k: v for k, v in data.items() if k in names})
        report.sample_rejects = [Reject.from_dict(r) for r in data.get("sample_rejects", [])]
        return report


#: The count fields of a report, in their order.
COUNTS: tuple[str, ...] = tuple(f.name for f in fields(LoadReport) if f.metadata.get("count"))


@dataclass
class BlockResult:
    """The outcome of one block of lines (picklable: it crosses process boundaries).

    It has every count of :data:`COUNTS` but ``resumed_lines`` (a run's, not a block's).
    """

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

    def counts(self) -> dict[str, int]:
        """This block's count fields, by name."""
        return {name: getattr(self, name) for name in COUNTS if name != "resumed_lines"}


class RejectsFile:
    """JSON lines ``{"line", "reason", "text"}``, created on the first reject only."""

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False):
        self.path = Path(path)
        self.append = append
        self.count = 0
        self._handle: IO[str] | None = None

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

"""Reading the task ledger that ``devstack/ledger.py`` appends from each worker process.

The ledger is a file outside every process under test (``CACHEWARM_TASK_LEDGER``),
so "nothing lost" and "how many duplicates" are counted from what really ran.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Ledger:
    """The JSON lines of one test's ledger file."""

    path: Path

    def records(self) -> list[dict]:
        """Every record so far (a partially written last line is ignored)."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_bytes().split(b"\n"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def successes(self, name: str | None = None) -> collections.Counter[str]:
        """SUCCESS count per task id (optionally of one task name)."""
        return collections.Counter(
            r["id"] for r in self.records()
            if r["event"] == "end" and r.get("state") == "SUCCESS" and (name is None or r["name"] == name)
        )

    def starts(self, name: str | None = None) -> collections.Counter[str]:
        """How many times each task id started (a redelivered task starts again)."""
        return collections.Counter(
            r["id"] for r in self.records() if r["event"] == "start" and (name is None or r["name"] == name)
        )

    def done(self, ids) -> bool:
        """True when every id in ``ids`` has succeeded at least once."""
        ok = self.successes()
        return all(ok[i] for i in ids)

    def missing(self, ids) -> list[str]:
        """Ids without a SUCCESS."""
        ok = self.successes()
        return [i for i in ids if not ok[i]]

    def duplicates(self, ids=None) -> int:
        """Extra SUCCESS lines beyond one per id (an idempotent task that ran twice)."""
        ok = self.successes()
        return sum(n - 1 for i, n in ok.items() if n > 1 and (ids is None or i in ids))

    def success_times(self, name: str | None = None) -> list[float]:
        """Wall-clock times of SUCCESS records, sorted."""
        return sorted(r["t"] for r in self.records()
                      if r["event"] == "end" and r.get("state") == "SUCCESS" and (name is None or r["name"] == name))

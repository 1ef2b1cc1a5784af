"""Fan a load out over Celery workers as a canvas: plan, chunks, one callback that merges.

``cachewarm.bulk_load`` checks the table (or creates it), scans the input once
into line-aligned byte ranges of about :data:`CHUNK_LINES` lines
(:func:`make_plan`), and replaces itself with a chord:

* header: one ``cachewarm.load_chunk`` per range, carrying only
  ``(load_id, index, path, start, end, first_line)``, its rejects part file and
  the thread count, never items (:func:`run_chunk` loads it);
* body: ``cachewarm.merge_load``, which gets the chunks' results in chunk order
  and folds them into one load report, and the parts into one rejects file in
  line order (:func:`merge`).

``Task.replace`` gives the body the bulk load's task id, so the one id that
``cachewarm load --async`` prints ends with the merged report. No task waits on
another: the chord is counted by the Redis result backend as chunks finish.

Progress: every chunk adds its lines to one small hash per load
(:class:`LoadProgress`, ``<prefix>:v1:load:<load_id>``, with a TTL) and stores
the sum as task state ``PROGRESS`` with meta ``{"done", "total", "chunks",
"chunks_done", "load_id"}`` on the bulk load's id, at most every
:data:`PROGRESS_SECONDS` per chunk. Followers (``load --wait``, Flower) read
that one id. Celery's Redis backend never overwrites a SUCCESS, so a late chunk
cannot turn the final report back into progress.

What a redelivered or duplicated chunk costs (Celery 5.7, Redis result backend):
chunks are idempotent (puts by key, the rejects part rewritten), ``acks_late``
with ``reject_on_worker_lost``. A chunk whose worker died runs again from its
first line: the time to rewrite up to one chunk, and progress counts only lines
beyond the best earlier run. The chord counter does not move twice: the backend
counts each ``(task id, group index)`` once (chunk ids are
``<load_id>-chunk-<index>``), and after the callback is sent it keeps a done
marker for at least 5 minutes that makes late copies a no-op. A copy arriving
later still rewrites its items (same values) and its result key; it never sends
the callback again. A bulk load redelivered before it replaced itself (killed
while scanning) simply plans again; killed in the instant after sending the
chord and before its ack, it sends a second chord under a new group id: the
whole load runs twice, and the second merged report overwrites the first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cachewarm.keys import KeySchema
from cachewarm.settings import Settings
from loaders.errors import EmptyInputError
from loaders.reader import open_source
from loaders.report import LoadReport
from workers.load_plan import plan_chunks

#: Lines per chunk task: 1-3 s of work at the 2,000-4,000 items/s measured here,
#: well inside load_chunk's 120 s hard limit (workers/config.py TIME_LIMITS), so
#: progress moves and a lost worker costs little, yet few enough tasks that
#: queueing overhead is noise (a million lines are 200 chunks).
CHUNK_LINES = 5_000
#: The progress hash outlives any load; Celery's results expire after the same day.
PROGRESS_TTL_SECONDS = 24 * 3600
#: A chunk stores PROGRESS on the followed id at most this often (plus once when it ends).
PROGRESS_SECONDS = 0.5

# Record lines done in one chunk; count only lines beyond its best earlier run.
#
# KEYS[1] the load's progress hash
# ARGV[1] chunk index
# ARGV[2] lines done so far in that chunk (a re-run restarts from 0)
# ARGV[3] 1 when the chunk has finished, else 0
# ARGV[4] hash time to live, in seconds
#
# Returns {done, total, chunks, chunks_done}; total is 0 when the load is unknown (merged and cleared).
ADVANCE = """
local field = 'lines:' .. ARGV[1]
local best = tonumber(redis.call('HGET', KEYS[1], field) or '0')
local now = tonumber(ARGV[2])
if now > best then
  redis.call('HSET', KEYS[1], field, now)
  redis.call('HINCRBY', KEYS[1], 'done', now - best)
end
if ARGV[3] == '1' and redis.call('HSETNX', KEYS[1], 'finished:' .. ARGV[1], 1) == 1 then
  redis.call('HINCRBY', KEYS[1], 'chunks_done', 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local v = redis.call('HMGET', KEYS[1], 'done', 'total', 'chunks', 'chunks_done')
return {tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0'), tonumber(v[4] or '0')}
"""


class LoadProgress:
    """Lines done per chunk of one load, summed in one Redis hash (job bookkeeping, on the broker's Redis)."""

    def __init__(self, redis: Any, key_prefix: str, load_id: str):
        self.redis = redis
        self.load_id = load_id
        self.key = f"{KeySchema(prefix=key_prefix).root}load:{load_id}"
        self._advance = redis.register_script(ADVANCE)

    @classmethod
    def for_settings(cls, settings: Settings, load_id: str) -> LoadProgress:
        """The progress of ``load_id`` on the broker's Redis."""
        from cachewarm.clients import redis_client

        return cls(redis_client(settings.redis_url, timeout=5.0, retries=3), settings.key_prefix, load_id)

    def start(self, *, total: int, chunks: int) -> dict[str, Any]:
        """Note the size of the load (a re-planned load keeps the counts of chunks already run)."""
        pipe = self.redis.pipeline()
        pipe.hset(self.key, mapping={"total": total, "chunks": chunks})
        pipe.expire(self.key, PROGRESS_TTL_SECONDS)
        pipe.execute()
        return self.meta(*self._run(0, 0, finished=False))

    def advance(self, index: int, lines: int, *, finished: bool = False) -> dict[str, Any] | None:
        """Record ``lines`` done in chunk ``index``; return the load's progress meta (None once merged)."""
        done, total, chunks, chunks_done = self._run(index, lines, finished=finished)
        return self.meta(done, total, chunks, chunks_done) if total else None

    def _run(self, index: int, lines: int, *, finished: bool) -> list[int]:
        return [int(v) for v in self._advance(keys=[self.key],
                                              args=[index, lines, 1 if finished else 0, PROGRESS_TTL_SECONDS])]

    def meta(self, done: int, total: int, chunks: int, chunks_done: int) -> dict[str, Any]:
        """The PROGRESS meta followers read (``done`` never exceeds ``total``)."""
        return {"done": min(done, total), "total": total, "chunks": chunks, "chunks_done": chunks_done,
                "load_id": self.load_id}

    def snapshot(self) -> tuple[dict[int, int], int]:
        """Finished chunks (index -> lines) and lines done across all chunks (tests and tooling)."""
        raw = self.redis.hgetall(self.key)
        fields = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
        finished = {int(name.removeprefix("finished:")): fields.get(f"lines:{name.removeprefix('finished:')}", 0)
                    for name in fields if name.startswith("finished:")}
        return finished, fields.get("done", 0)

    def clear(self) -> None:
        """Forget the load's progress (its report is the task result now)."""
        self.redis.delete(self.key)


class ProgressPublisher:
    """A chunk's ``on_progress``: record its lines, store the load's meta at most every PROGRESS_SECONDS."""

    def __init__(self, progress: LoadProgress, index: int, *, store: Callable[[dict[str, Any]], None],
                 clock: Callable[[], float] = time.monotonic):
        self.progress = progress
        self.index = index
        self.store = store
        self.clock = clock
        self.last = float("-inf")

    def __call__(self, lines: int, finished: bool) -> None:
        """Record ``lines`` done in this chunk; publish unless published a moment ago (always when finished)."""
        meta = self.progress.advance(self.index, lines, finished=finished)
        now = self.clock()
        if meta is not None and (finished or now - self.last >= PROGRESS_SECONDS):
            self.store(meta)
            self.last = now


def prepare_table(settings: Settings, *, create_table: bool) -> None:
    """Create the table, or check it exists, before any chunk is sent (TableNotFoundError with its hint)."""
    from cachewarm import service

    repo = service.repository(settings)
    if create_table:
        repo.create_table(wait=True)
    else:
        repo.describe()


def make_plan(path: str, *, settings: Settings, chunk_lines: int = CHUNK_LINES) -> dict[str, Any]:
    """Scan the input once and cut it into chunks (raises InputError / EmptyInputError)."""
    source = open_source(path, region=settings.aws_region)
    if source.size == 0:
        raise EmptyInputError(f"{source.uri} is empty: there is nothing to load")
    with source.open() as stream:
        chunks, total_lines, total_bytes = plan_chunks(stream, chunk_lines=chunk_lines)
    return {"path": path, "identity": source.identity(), "total_lines": total_lines, "total_bytes": total_bytes,
            "chunks": [chunk.to_dict() for chunk in chunks]}


def part_path(rejects: str | None, index: int) -> str | None:
    """Where chunk ``index`` writes its rejects (merged by the callback)."""
    return f"{rejects}.part-{index:05d}" if rejects else None


def run_chunk(
    *,
    index: int,
    path: str,
    start: int,
    end: int,
    first_line: int,
    settings: Settings,
    threads: int | None = None,
    rejects: str | None = None,
    on_progress: Callable[[int, bool], None] | None = None,
) -> dict[str, Any]:
    """Load one chunk; return its report as a dict plus ``index``.

    ``on_progress(lines, finished)`` gets the lines done so far after each
    block, and once more with ``finished=True`` after the last.
    """
    from loaders.pipeline import load_range

    def progress(lines: int) -> None:
        if on_progress is not None:
            on_progress(lines, False)

    report = load_range(path, start=start, end=end, first_line=first_line, settings=settings, threads=threads,
                        rejects=rejects, progress=progress)
    if on_progress is not None:
        on_progress(report.lines, True)
    return {"index": index, **report.to_dict()}


def merge(results: list[dict[str, Any]], *, source: str, rejects: str | None, threads: int | None,
          started: float) -> dict[str, Any]:
    """One load report from the chunks' results; their rejects files merged into ``rejects``, in line order.

    ``started`` is the bulk load's start (epoch seconds): the report's time is
    the load's wall time, not the sum of its chunks'.
    """
    from loaders.pipeline import DEFAULT_THREADS

    ordered = sorted(results, key=lambda result: int(result["index"]))
    report = LoadReport.combine(source, ordered, threads=threads or DEFAULT_THREADS)
    report.seconds = max(0.0, time.time() - started)
    files = [str(part["rejects_path"]) for part in ordered if part.get("rejects_path")]
    report.rejects_path = merge_rejects(files, rejects) if files and rejects else None
    return {**report.to_dict(), "chunks": len(ordered)}


def merge_rejects(parts: list[str], target: str) -> str:
    """Concatenate chunk rejects files (in chunk order) into ``target``; delete the parts.

    Safe to run again (a redelivered callback): parts are deleted only after
    ``target`` is in place, so a part already gone means the merge happened.
    """
    existing = [part for part in parts if os.path.exists(part)]
    if len(existing) < len(parts) and os.path.exists(target):
        for part in existing:
            Path(part).unlink(missing_ok=True)
        return target
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    temporary = f"{target}.{os.getpid()}.tmp"
    with open(temporary, "wb") as out:
        for part in existing:
            with open(part, "rb") as handle:
                while piece := handle.read(1 << 20):
                    out.write(piece)
    os.replace(temporary, target)
    for part in existing:
        Path(part).unlink(missing_ok=True)
    return target

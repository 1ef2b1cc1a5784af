"""Fan a load out over Celery workers, without Celery: plan, share, track, merge.

``cachewarm.bulk_load`` (the coordinator) scans the input once and cuts it into
line-aligned byte ranges of about :data:`CHUNK_LINES` lines; each range becomes a
``cachewarm.load_chunk`` task carrying only ``(path, start, end, first_line)``,
never items. Shared state lives in Redis under ``<prefix>:v1:load:<load_id>``
(the coordinator's task id), every key with a TTL:

* the plan, written once (a redelivered coordinator finds and reuses it);
* per chunk: lines done so far, and its result once finished;
* per chunk, a claim ``SET NX PX`` with a token: the executing task's id, so a
  task redelivered after its worker died takes its own chunk straight back.

The coordinator does not sit idle waiting (which would deadlock a worker with
one process): between polls it claims a chunk no one has started, newest
first, and loads it itself. A chunk whose executor died loses its claim after
:data:`CLAIM_MS` and is picked up again. Chunks are idempotent (puts by key),
so a chunk loaded twice costs time, never correctness. The coordinator reports
``{"done", "total"}`` lines as task state until every chunk is finished, then
merges the chunks' rejects files into one, in line order.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cachewarm.keys import KeySchema
from cachewarm.settings import Settings
from loaders.errors import EmptyInputError
from loaders.reader import open_source
from loaders.report import SAMPLE_REJECTS, LoadReport
from loaders.validate import Reject
from workers.load_plan import plan_chunks

#: Lines per chunk task: a few seconds of work, so progress moves and a lost
#: worker costs little, yet few enough tasks that queueing overhead is noise.
CHUNK_LINES = 20_000
#: A chunk's claim lapses this long after its executor's last sign of life.
CLAIM_MS = 60_000
#: Load state outlives any load; results of Celery tasks expire after the same day.
STATE_TTL_SECONDS = 24 * 3600
#: Seconds between coordinator polls, and at least between progress reports.
POLL_SECONDS = 0.5

# Take or renew the claim on a chunk.
#
# KEYS[1] claim key
# ARGV[1] token (the executor's id)
# ARGV[2] claim time to live, in milliseconds
#
# Returns 1 if the caller holds the claim now (taken or renewed), 0 if another token does.
CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Give a claim up, only if it is still ours.
#
# KEYS[1] claim key
# ARGV[1] token
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LoadState:
    """One load's shared state in Redis."""

    def __init__(self, redis: Any, key_prefix: str, load_id: str):
        self.redis = redis
        self.load_id = load_id
        self.key = f"{KeySchema(prefix=key_prefix).root}load:{load_id}"
        self._claim = redis.register_script(CLAIM)
        self._release = redis.register_script(RELEASE)

    @classmethod
    def for_settings(cls, settings: Settings, load_id: str) -> LoadState:
        """State on the broker's Redis (job bookkeeping, not cache)."""
        from cachewarm.clients import redis_client

        return cls(redis_client(settings.redis_url, timeout=5.0, retries=3), settings.key_prefix, load_id)

    def _touch(self, pipe: Any) -> None:
        pipe.expire(self.key, STATE_TTL_SECONDS)

    def plan(self) -> dict[str, Any] | None:
        """The stored plan, if any."""
        raw = self.redis.hget(self.key, "plan")
        return json.loads(raw) if raw else None

    def save_plan(self, plan: dict[str, Any]) -> dict[str, Any]:
        """Store the plan unless one exists; return the one stored (first writer wins)."""
        pipe = self.redis.pipeline()
        pipe.hsetnx(self.key, "plan", json.dumps(plan))
        self._touch(pipe)
        pipe.execute()
        stored = self.plan()
        assert stored is not None
        return stored

    def mark_enqueued(self) -> bool:
        """True the first time only: whoever gets True sends the chunk tasks."""
        pipe = self.redis.pipeline()
        pipe.hsetnx(self.key, "enqueued", "1")
        self._touch(pipe)
        return bool(pipe.execute()[0])

    def claim(self, index: int, token: str) -> bool:
        """Take or renew the claim on chunk ``index``."""
        return bool(self._claim(keys=[f"{self.key}:claim:{index}"], args=[token, CLAIM_MS]))

    def release(self, index: int, token: str) -> None:
        """Drop our claim on chunk ``index``."""
        self._release(keys=[f"{self.key}:claim:{index}"], args=[token])

    def progress(self, index: int, lines: int) -> None:
        """Record lines done so far in chunk ``index``."""
        self.redis.hset(self.key, f"progress:{index}", lines)

    def complete(self, index: int, result: dict[str, Any]) -> None:
        """Record chunk ``index`` as finished."""
        pipe = self.redis.pipeline()
        pipe.hset(self.key, mapping={f"done:{index}": json.dumps(result), f"progress:{index}": result["lines"]})
        self._touch(pipe)
        pipe.execute()

    def result(self, index: int) -> dict[str, Any] | None:
        """Chunk ``index``'s result if it finished."""
        raw = self.redis.hget(self.key, f"done:{index}")
        return json.loads(raw) if raw else None

    def snapshot(self) -> tuple[dict[int, dict[str, Any]], int]:
        """Finished chunks' results, and lines done across all chunks."""
        fields = self.redis.hgetall(self.key)
        done: dict[int, dict[str, Any]] = {}
        lines = 0
        for raw_name, value in fields.items():
            name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
            if name.startswith("done:"):
                done[int(name[5:])] = json.loads(value)
            elif name.startswith("progress:"):
                lines += int(value)
        return done, lines


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
    """Where chunk ``index`` writes its rejects (merged by the coordinator)."""
    return f"{rejects}.part-{index:05d}" if rejects else None


def run_chunk(
    state: LoadState,
    *,
    index: int,
    token: str,
    path: str,
    start: int,
    end: int,
    first_line: int,
    settings: Settings,
    threads: int | None = None,
    rejects: str | None = None,
    on_progress: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Load chunk ``index`` unless it is finished or someone else holds it; return its result."""
    from loaders.pipeline import load_range

    finished = state.result(index)
    if finished is not None:
        return finished
    if not state.claim(index, token):
        return {"index": index, "skipped": "another executor holds this chunk"}

    def progress(lines: int) -> None:
        state.progress(index, lines)
        state.claim(index, token)  # renew: still alive
        if on_progress is not None:
            on_progress()

    report = load_range(path, start=start, end=end, first_line=first_line, settings=settings, threads=threads,
                        rejects=part_path(rejects, index), progress=progress)
    result = {"index": index, **{k: v for k, v in report.to_dict().items() if k != "source"}}
    state.complete(index, result)
    state.release(index, token)
    return result


def coordinate(
    state: LoadState,
    *,
    path: str,
    settings: Settings,
    enqueue: Callable[[list[dict[str, int]]], None],
    report_progress: Callable[[dict[str, Any]], None],
    chunk_lines: int = CHUNK_LINES,
    threads: int | None = None,
    rejects: str | None = None,
    create_table: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run a fanned-out load to the end; return its report as a dict (``LoadReport.to_dict`` + extras)."""
    started = time.time()
    plan = state.plan()
    if plan is None:
        from cachewarm import service

        repo = service.repository(settings)
        if create_table:
            repo.create_table(wait=True)
        else:
            repo.describe()  # TableNotFoundError with its hint, before any chunk is sent
        plan = state.save_plan(make_plan(path, settings=settings, chunk_lines=chunk_lines))
    chunks = plan["chunks"]
    total = int(plan["total_lines"])
    if state.mark_enqueued():
        enqueue(chunks)
    token = f"{state.load_id}:coordinator"
    last_report = 0.0
    best = 0  # progress never goes backwards on screen, even when a chunk restarts

    def report(force: bool = False) -> dict[int, dict[str, Any]]:
        nonlocal last_report, best
        done, lines = state.snapshot()
        now = time.monotonic()
        if force or now - last_report >= POLL_SECONDS:
            best = max(best, min(lines, total))
            report_progress({"done": best, "total": total, "chunks_done": len(done), "chunks": len(chunks),
                             "load_id": state.load_id})
            last_report = now
        return done

    while True:
        done = report(force=True)
        if len(done) >= len(chunks):
            break
        helped = False
        for chunk in reversed(chunks):  # tasks start from the oldest; help from the newest
            index = chunk["index"]
            if index in done or not state.claim(index, token):
                continue
            run_chunk(state, index=index, token=token, path=path, start=chunk["start"], end=chunk["end"],
                      first_line=chunk["first_line"], settings=settings, threads=threads, rejects=rejects,
                      on_progress=report)
            helped = True
            break
        if not helped:
            sleep(POLL_SECONDS)

    from loaders.pipeline import DEFAULT_THREADS

    # workers=0: the chunks ran on however many Celery worker processes took them.
    summary = LoadReport(source=str(plan["path"]), workers=0, threads=threads or DEFAULT_THREADS)
    samples: list[Reject] = []
    parts: list[str] = []
    for index in sorted(done):
        result = done[index]
        for name in ("lines", "written", "rejected", "duplicates", "retries", "invalidated",
                     "invalidation_skipped"):
            setattr(summary, name, getattr(summary, name) + int(result.get(name, 0)))
        samples += [Reject.from_dict(r) for r in result.get("sample_rejects", [])]
        if result.get("rejects_path"):
            parts.append(result["rejects_path"])
    summary.sample_rejects = sorted(samples, key=lambda r: r.line)[:SAMPLE_REJECTS]
    summary.seconds = time.time() - started
    if parts and rejects:
        summary.rejects_path = merge_rejects(parts, rejects)
    out = summary.to_dict()
    out.update(load_id=state.load_id, chunks=len(chunks))
    return out


def merge_rejects(parts: list[str], target: str) -> str:
    """Concatenate chunk rejects files (already in chunk order) into ``target``; delete the parts."""
    existing = [part for part in parts if os.path.exists(part)]
    if not existing:  # merged already, by an earlier run of a redelivered coordinator
        return target
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    temporary = f"{target}.{os.getpid()}.tmp"
    with open(temporary, "wb") as out:
        for part in existing:
            with open(part, "rb") as handle:
                while piece := handle.read(1 << 20):
                    out.write(piece)
    os.replace(temporary, target)
    for part in parts:
        Path(part).unlink(missing_ok=True)
    return target

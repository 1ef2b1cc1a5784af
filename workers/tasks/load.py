"""Load tasks: decode arguments, call :mod:`workers.fanout`, own the retry policy.

``cachewarm.bulk_load`` coordinates; ``cachewarm.load_chunk`` loads one
line-aligned byte range. Both are idempotent (puts by key, shared state keyed
by the coordinator's task id), so they ack late and are requeued when their
worker process dies.
"""

from __future__ import annotations

import logging
import os
import tempfile

from cachewarm.settings import get_settings
from workers.app import app
from workers.fanout import CHUNK_LINES, LoadState, coordinate, part_path, run_chunk
from workers.retry import IDEMPOTENT, RETRY_POLICY

log = logging.getLogger(__name__)


def default_rejects(load_id: str) -> str:
    """Where a load started without a rejects path (e.g. by beat) keeps its rejects."""
    return os.path.join(tempfile.gettempdir(), f"cachewarm-load-{load_id}.rejects.jsonl")


@app.task(name="cachewarm.bulk_load", bind=True, **IDEMPOTENT, **RETRY_POLICY)
def bulk_load(self, path: str, rejects: str | None = None, create_table: bool = False,
              chunk_lines: int = CHUNK_LINES, threads: int | None = None) -> dict:
    """Load a JSON-lines file or ``s3://`` object by fanning it out as ``load_chunk`` tasks.

    Progress is task state ``PROGRESS`` with meta ``{"done", "total"}`` (lines).
    Returns the load report (counts, sample rejects, the merged rejects file).
    """
    settings = get_settings()
    load_id = self.request.id or "eager"
    rejects = rejects or default_rejects(load_id)
    state = LoadState.for_settings(settings, load_id)

    def enqueue(chunks: list[dict[str, int]]) -> None:
        for chunk in chunks:
            load_chunk.apply_async(
                args=[load_id, chunk["index"], path, chunk["start"], chunk["end"], chunk["first_line"]],
                kwargs={"rejects": rejects, "threads": threads},
                task_id=f"{load_id}-chunk-{chunk['index']}",
            )
        log.info("bulk_load %s: %s fanned out as %d chunks", load_id, path, len(chunks))

    def report_progress(meta: dict) -> None:
        self.update_state(state="PROGRESS", meta=meta)

    result = coordinate(state, path=path, settings=settings, enqueue=enqueue, report_progress=report_progress,
                        chunk_lines=int(chunk_lines), threads=threads, rejects=rejects,
                        create_table=bool(create_table))
    log.info("bulk_load %s: %d lines, %d written, %d rejected in %.1fs", load_id, result["lines"],
             result["written"], result["rejected"], result["seconds"])
    return result


@app.task(name="cachewarm.load_chunk", bind=True, **IDEMPOTENT, **RETRY_POLICY)
def load_chunk(self, load_id: str, index: int, path: str, start: int, end: int, first_line: int,
               rejects: str | None = None, threads: int | None = None) -> dict:
    """Load lines ``first_line``.. of ``path``, bytes ``start``..``end`` (one chunk of a bulk load)."""
    settings = get_settings()
    state = LoadState.for_settings(settings, load_id)
    result = run_chunk(state, index=int(index), token=self.request.id or f"{load_id}-chunk-{index}", path=path,
                       start=int(start), end=int(end), first_line=int(first_line), settings=settings,
                       threads=threads, rejects=rejects)
    if "skipped" not in result:
        log.info("load_chunk %s #%d: %d lines, %d written, %d rejected (rejects: %s)", load_id, index,
                 result["lines"], result["written"], result["rejected"], part_path(rejects, int(index)))
    return result

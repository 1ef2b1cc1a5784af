"""Load tasks: decode arguments, call :mod:`workers.fanout`, own the retry policy.

``cachewarm.bulk_load`` plans a load and replaces itself with a chord of
``cachewarm.load_chunk`` tasks whose callback, ``cachewarm.merge_load``, takes
over the bulk load's task id and returns the merged report (see
:mod:`workers.fanout`). Every one is idempotent (puts by key, files replaced),
so they ack late and are requeued when their worker process dies.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

from celery import chord

from cachewarm.settings import get_settings
from workers.app import app
from workers.fanout import (
    CHUNK_LINES,
    LoadProgress,
    ProgressPublisher,
    make_plan,
    merge,
    part_path,
    prepare_table,
)
from workers.fanout import run_chunk as run_chunk_range
from workers.retry import IDEMPOTENT, RETRY_POLICY

log = logging.getLogger(__name__)


def default_rejects(load_id: str) -> str:
    """Where a load started without a rejects path (e.g. by beat) keeps its rejects."""
    return os.path.join(tempfile.gettempdir(), f"cachewarm-load-{load_id}.rejects.jsonl")


def load_canvas(load_id: str, plan: dict[str, Any], *, rejects: str, threads: int | None,
                started: float) -> chord:
    """The chord for ``plan``: one ``load_chunk`` per chunk (offsets, never items), then ``merge_load``."""
    path = plan["path"]
    header = [
        load_chunk.si(load_id, chunk["index"], path, chunk["start"], chunk["end"], chunk["first_line"],
                      rejects=part_path(rejects, chunk["index"]), threads=threads)
        .set(task_id=f"{load_id}-chunk-{chunk['index']}")
        for chunk in plan["chunks"]
    ]
    return chord(header, merge_load.s(source=path, rejects=rejects, threads=threads, started=started))


@app.task(name="cachewarm.bulk_load", bind=True, **IDEMPOTENT, **RETRY_POLICY)
def bulk_load(self, path: str, rejects: str | None = None, create_table: bool = False,
              chunk_lines: int = CHUNK_LINES, threads: int | None = None) -> dict:
    """Load a JSON-lines file or ``s3://`` object as a chord of ``load_chunk`` tasks and ``merge_load``.

    Progress is task state ``PROGRESS`` with meta ``{"done", "total"}`` (lines)
    on this task's id, which in the end holds the merged load report.
    """
    started = time.time()
    settings = get_settings()
    load_id = self.request.id or "eager"
    rejects = rejects or default_rejects(load_id)
    prepare_table(settings, create_table=bool(create_table))  # a missing table fails before any chunk is sent
    plan = make_plan(path, settings=settings, chunk_lines=int(chunk_lines))
    meta = LoadProgress.for_settings(settings, load_id).start(total=int(plan["total_lines"]),
                                                              chunks=len(plan["chunks"]))
    self.update_state(state="PROGRESS", meta=meta)
    log.info("bulk_load %s: %s fanned out as %d chunks", load_id, path, len(plan["chunks"]))
    raise self.replace(load_canvas(load_id, plan, rejects=rejects, threads=threads, started=started))


@app.task(name="cachewarm.load_chunk", bind=True, **IDEMPOTENT, **RETRY_POLICY)
def load_chunk(self, load_id: str, index: int, path: str, start: int, end: int, first_line: int,
               rejects: str | None = None, threads: int | None = None) -> dict:
    """Load lines ``first_line``.. of ``path``, bytes ``start``..``end`` (one chunk of bulk load ``load_id``).

    Publishes the load's progress on ``load_id``; returns the chunk's report.
    """
    settings = get_settings()
    # The backend, not update_state: the meta belongs to the bulk load's id and
    # must not carry this chunk's name and arguments (result_extended).
    publish = ProgressPublisher(LoadProgress.for_settings(settings, load_id), int(index),
                                store=lambda meta: self.backend.store_result(load_id, meta, "PROGRESS"))
    result = run_chunk_range(index=int(index), path=path, start=int(start), end=int(end),
                             first_line=int(first_line), settings=settings, threads=threads, rejects=rejects,
                             on_progress=publish)
    log.info("load_chunk %s #%d: %d lines, %d written, %d rejected (rejects: %s)", load_id, index,
             result["lines"], result["written"], result["rejected"], result["rejects_path"])
    return result


@app.task(name="cachewarm.merge_load", bind=True, **IDEMPOTENT, **RETRY_POLICY)
def merge_load(self, results: list[dict], source: str, rejects: str | None = None, threads: int | None = None,
               started: float = 0.0) -> dict:
    """Chord callback of a bulk load: one report from the chunks' results, one rejects file in line order.

    Runs under the bulk load's task id (``Task.replace``), so its result is the bulk load's.
    """
    load_id = self.request.id or "eager"
    report = merge(results, source=source, rejects=rejects, threads=threads, started=started or time.time())
    report["load_id"] = load_id
    LoadProgress.for_settings(get_settings(), load_id).clear()
    log.info("bulk_load %s: %d lines, %d written, %d rejected in %.1fs", load_id, report["lines"],
             report["written"], report["rejected"], report["seconds"])
    return report

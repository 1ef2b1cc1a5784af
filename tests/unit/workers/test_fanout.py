"""workers/fanout.py and the load canvas: plan, chunks, progress and the merge, without Celery servers.

Chunks run here one after another on moto, the progress hash on fakeredis;
the cache is unreachable, so the write-around is skipped (and counted as
such). tests/integration/test_load.py runs the same canvas on a real worker.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import boto3
import fakeredis
import pytest

from loaders.errors import EmptyInputError
from loaders.report import read_rejects
from workers import fanout
from workers.fanout import LoadProgress, ProgressPublisher, make_plan, merge, merge_rejects, part_path, run_chunk

TABLE = "Restaurants"


def table_count() -> int:
    client = boto3.client("dynamodb", region_name="us-east-1")
    return sum(page["Count"] for page in client.get_paginator("scan").paginate(TableName=TABLE, Select="COUNT"))


def review(user: str, rest: str, n: int) -> str:
    return json.dumps({"PK": f"USER#{user}", "SK": f"REST#{rest}", "GSI1PK": f"REST#{rest}",
                       "GSI1SK": f"#REVIEW#{n:040x}", "id": f"{n:040x}", "restaurant": rest, "username": user,
                       "rating": 4, "review": "ok", "created_at": f"2021-01-01T00:00:{n % 60:02d}"})


def messy_file(tmp_path, lines: int = 250):
    rows = [review(f"u{i}", f"R{i % 7}", i) for i in range(lines)]
    rows[10] = "oops"
    rows[200] = "{}"
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_canvas_is_chunks_of_offsets_then_one_merge(moto_settings, tmp_path):
    from workers.tasks.load import load_canvas

    path = messy_file(tmp_path)
    plan = make_plan(str(path), settings=moto_settings, chunk_lines=60)
    assert plan["total_lines"] == 250 and plan["total_bytes"] == path.stat().st_size
    canvas = load_canvas("L1", plan, rejects="/r/rej.jsonl", threads=4, started=12.5)

    header = list(canvas.tasks)
    assert [t.task for t in header] == ["cachewarm.load_chunk"] * 5
    assert [t.args[5] for t in header] == [1, 61, 121, 181, 241]  # first_line: offsets and numbers, never items
    first = header[0]
    assert first.args == ("L1", 0, str(path), 0, plan["chunks"][0]["end"], 1)
    assert first.kwargs == {"rejects": "/r/rej.jsonl.part-00000", "threads": 4}
    assert [t.options["task_id"] for t in header] == [f"L1-chunk-{i}" for i in range(5)]
    assert first.immutable  # the chunks take no result from anything
    assert canvas.body.task == "cachewarm.merge_load"
    assert canvas.body.kwargs == {"source": str(path), "rejects": "/r/rej.jsonl", "threads": 4, "started": 12.5}


def test_an_empty_input_is_refused_before_anything_is_sent(moto_settings, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError, match="nothing to load"):
        make_plan(str(empty), settings=moto_settings)


def test_progress_sums_chunks_and_a_rerun_chunk_does_not_count_twice():
    progress = LoadProgress(fakeredis.FakeRedis(), "t", "L2")
    assert progress.start(total=250, chunks=5) == {"done": 0, "total": 250, "chunks": 5, "chunks_done": 0,
                                                   "load_id": "L2"}
    assert progress.advance(0, 30)["done"] == 30
    assert progress.advance(1, 20)["done"] == 50
    assert progress.advance(0, 60, finished=True) == {"done": 80, "total": 250, "chunks": 5, "chunks_done": 1,
                                                       "load_id": "L2"}
    # Chunk 1's worker died; the chunk runs again from its first line.
    assert progress.advance(1, 5)["done"] == 80
    assert progress.advance(1, 60, finished=True)["done"] == 120
    assert progress.advance(1, 60, finished=True)["chunks_done"] == 2  # a duplicate finish counts once
    assert progress.snapshot() == ({0: 60, 1: 60}, 120)
    assert 0 < progress.redis.ttl(progress.key) <= fanout.PROGRESS_TTL_SECONDS
    assert progress.key == "t:v2:load:L2"

    progress.clear()  # merged: a late duplicate chunk publishes nothing
    assert progress.advance(2, 60, finished=True) is None


def test_a_chunk_publishes_at_most_every_interval_and_always_when_it_ends():
    progress = LoadProgress(fakeredis.FakeRedis(), "t", "L3")
    progress.start(total=100, chunks=1)
    now = [0.0]
    stored: list[dict] = []
    publish = ProgressPublisher(progress, 0, store=stored.append, clock=lambda: now[0])
    for lines, at in [(10, 0.0), (20, 0.1), (30, 0.2), (40, 0.6)]:
        now[0] = at
        publish(lines, False)
    assert [m["done"] for m in stored] == [10, 40]
    publish(100, True)
    assert stored[-1]["done"] == 100 and stored[-1]["chunks_done"] == 1


def test_chunks_then_the_merge_give_one_report_and_one_rejects_file_in_line_order(
        moto_settings, tmp_path):
    path = messy_file(tmp_path)
    plan = make_plan(str(path), settings=moto_settings, chunk_lines=60)
    rejects = str(tmp_path / "rej.jsonl")
    progress = LoadProgress(fakeredis.FakeRedis(), "t", "L4")
    progress.start(total=plan["total_lines"], chunks=len(plan["chunks"]))
    seen: list[dict] = []
    results = []
    for chunk in reversed(plan["chunks"]):  # chunks finish in any order
        publish = ProgressPublisher(progress, chunk["index"], store=seen.append)
        results.append(run_chunk(index=chunk["index"], path=str(path), start=chunk["start"], end=chunk["end"],
                                 first_line=chunk["first_line"], settings=moto_settings,
                                 rejects=part_path(rejects, chunk["index"]), on_progress=publish))
    assert seen[-1]["done"] == seen[-1]["total"] == 250 and seen[-1]["chunks_done"] == 5
    assert all(a["done"] <= b["done"] for a, b in itertools.pairwise(seen))
    assert sorted(os.listdir(tmp_path)) == ["items.jsonl", "rej.jsonl.part-00000", "rej.jsonl.part-00003"]

    report = merge(results, source=str(path), rejects=rejects, threads=None, started=time.time())
    assert (report["lines"], report["written"], report["rejected"], report["chunks"]) == (250, 248, 2, 5)
    assert [r["line"] for r in report["sample_rejects"]] == [11, 201]
    assert report["rejects_path"] == rejects
    assert [r.line for r in read_rejects(rejects)] == [11, 201]
    assert not list(tmp_path.glob("rej.jsonl.part-*"))  # merged, then removed
    assert table_count() == 248

    # A redelivered callback (same results, parts already merged) reports the same and keeps the file.
    again = merge(results, source=str(path), rejects=rejects, threads=None, started=time.time())
    assert (again["written"], again["rejected"], again["rejects_path"]) == (248, 2, rejects)
    assert [r.line for r in read_rejects(rejects)] == [11, 201]


def test_a_load_without_rejects_has_no_rejects_file(moto_settings, tmp_path):
    path = tmp_path / "good.jsonl"
    path.write_text("\n".join(review(f"u{i}", "Thai", i) for i in range(20)) + "\n")
    result = run_chunk(index=0, path=str(path), start=0, end=path.stat().st_size, first_line=1,
                       settings=moto_settings, rejects=part_path(str(tmp_path / "r.jsonl"), 0))
    report = merge([result], source=str(path), rejects=str(tmp_path / "r.jsonl"), threads=2, started=time.time())
    assert (report["written"], report["rejected"], report["rejects_path"]) == (20, 0, None)
    assert not (tmp_path / "r.jsonl").exists()


def test_merging_rejects_again_after_a_crash_between_replace_and_cleanup(tmp_path):
    parts = [tmp_path / "r.part-00000", tmp_path / "r.part-00001"]
    parts[0].write_text('{"line": 3}\n')
    parts[1].write_text('{"line": 70}\n')
    target = str(tmp_path / "r.jsonl")
    merge_rejects([str(p) for p in parts], target)
    assert Path(target).read_text() == '{"line": 3}\n{"line": 70}\n'
    parts[1].write_text('{"line": 70}\n')  # as if the first merge died before deleting this part
    assert merge_rejects([str(p) for p in parts], target) == target
    assert Path(target).read_text() == '{"line": 3}\n{"line": 70}\n' and not parts[1].exists()

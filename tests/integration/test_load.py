"""Issue 3 acceptance: ``cachewarm load`` and ``generate`` against a real dynalite and redis-server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from devstack.localstack import PROJECT_ROOT, free_port
from tests.support.cli import BIN
from tests.support.cli import generate as _generate
from tests.support.items import seed_items_path
from tests.support.tables import count_items as _count
from tests.support.tables import table_items

pytestmark = pytest.mark.integration

SEED = seed_items_path()
FOUR_HUNDRED_KB = 400 * 1024

#: One of every kind of bad line the issue names (and a few more), by 1-based line number.
BAD_LINES: dict[int, bytes] = {
    3: b"this is not JSON",
    58: b'{"PK": "REST#cut", "SK": "REST#cut", "name": "truncated',
    101: b'["a JSON array", "not an object"]',
    150: b'"a JSON string"',
    222: b"null",
    260: b'{"SK": "REST#Nowhere", "name": "missing PK"}',
    333: b'{"PK": "REST#Nowhere", "name": "missing SK"}',
    401: b'{"PK": "", "SK": "REST#Nowhere"}',
    444: b'{"PK": "REST#Nowhere", "SK": ""}',
    512: b'{"PK": 42, "SK": "REST#Nowhere"}',
    555: b'{"PK": "REST#Nowhere", "SK": ["not", "a", "string"]}',
    606: b'{"PK": "REST#Typed", "SK": "REST#Typed", "GSI1PK": 7}',
    700: json.dumps({"PK": "REST#Huge", "SK": "REST#Huge", "review": "x" * (FOUR_HUNDRED_KB + 10)}).encode(),
    777: b"",
    808: b'{"PK": "REST#\xff\xfe", "SK": "bytes that are not UTF-8"}',
    888: b'{"PK": "REST#Nan", "SK": "REST#Nan", "rating": NaN}',
    999: b'{"PK": "REST#Long", "SK": "REST#Long", "review": "' + b"y" * (5 << 20) + b'"}',
}


def _items(repo) -> dict[tuple[str, str], dict]:
    return {(item["PK"], item["SK"]): item for item in table_items(repo)}


@pytest.fixture
def messy_file(cli, stack_env, tmp_path) -> tuple[Path, list[bytes]]:
    """1,000 lines: generated good lines with every kind of bad line scattered through them."""
    source = tmp_path / "generated.jsonl"
    _generate(cli, stack_env, source, restaurants=60)
    lines = source.read_bytes().splitlines()[:1000]
    assert len(lines) == 1000
    for number, raw in BAD_LINES.items():
        lines[number - 1] = raw
    path = tmp_path / "messy.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, lines


def test_every_good_line_is_written_and_every_bad_line_reported(cli, stack_env, table, messy_file, tmp_path):
    path, lines = messy_file
    rejects = tmp_path / "rejects.jsonl"
    done = cli("load", str(path), "--rejects", str(rejects), "--checkpoint", str(tmp_path / "ck"), env=stack_env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "1,000 lines, 983 written, 17 rejected" in done.stdout
    for number in BAD_LINES:
        assert f"line {number}: " in done.stderr
    assert str(rejects) in done.stderr

    records = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["line"] for r in records] == sorted(BAD_LINES)
    by_line = {r["line"]: r for r in records}
    for number, raw in BAD_LINES.items():
        record = by_line[number]
        assert record["reason"]
        if number == 999:  # over 4 MB: kept as its first bytes, never held whole
            assert record["text"].startswith(raw[:100].decode()) and "longer than" in record["reason"]
        else:
            assert record["text"] == raw.decode("utf-8", "backslashreplace")
    assert "over DynamoDB's limit" in by_line[700]["reason"]
    assert "GSI1PK must be a string" in by_line[606]["reason"]
    assert "not valid UTF-8" in by_line[808]["reason"]

    good = [json.loads(raw) for n, raw in enumerate(lines, start=1) if n not in BAD_LINES]
    stored = _items(table)
    assert len(stored) == len(good) == 983
    for item in good:
        assert stored[(item["PK"], item["SK"])] == item
    assert not (tmp_path / "ck").exists()


def test_missing_file_empty_file_and_missing_table(cli, stack_env, tmp_path):
    missing = cli("load", str(tmp_path / "nope.jsonl"), env=stack_env)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.jsonl'}: no such file"]

    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    nothing = cli("load", str(empty), env=stack_env)
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == f"error: {empty} is empty: there is nothing to load"

    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"PK": "REST#A", "SK": "REST#A", "name": "A"}) + "\n")
    no_table = cli("load", str(one), env=stack_env)
    assert no_table.returncode == 1
    assert "does not exist" in no_table.stderr
    assert "cachewarm table create" in no_table.stderr and "--create-table" in no_table.stderr
    assert "Traceback" not in no_table.stderr + nothing.stderr + missing.stderr

    usage = cli("load", str(one), "--async", "--resume", env=stack_env)
    assert usage.returncode == 2 and "apply to local loads" in usage.stderr

    created = cli("load", str(one), "--create-table", "--checkpoint", str(tmp_path / "ck"), env=stack_env)
    assert created.returncode == 0, created.stderr
    assert "1 line, 1 written, 0 rejected" in created.stdout
    from cachewarm import service
    from cachewarm.settings import Settings

    repo = service.repository(Settings.from_env(stack_env))
    assert _count(repo) == 1
    repo.delete_table(wait=False)


@pytest.mark.skipif(not SEED.exists(), reason=f"the shared seed file is not on this machine ({SEED})")
def test_the_shared_seed_file_loads(cli, stack_env, table, tmp_path):
    done = cli("load", str(SEED), "--json", "--rejects", str(tmp_path / "r.jsonl"), "--checkpoint",
               str(tmp_path / "ck"), env=stack_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["lines"], report["written"], report["rejected"]) == (261, 261, 0)
    assert _count(table) == 261
    assert not (tmp_path / "r.jsonl").exists()  # no rejects, no rejects file


def test_generate_is_deterministic_and_a_generated_file_loads_with_writer_processes(cli, stack_env, table,
                                                                                    tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    lines = _generate(cli, stack_env, a, restaurants=500, seed=42)
    _generate(cli, stack_env, b, restaurants=500, seed=42)
    _generate(cli, stack_env, c, restaurants=500, seed=43)
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    first = json.loads(a.read_text().splitlines()[0])
    assert list(first)[:4] == ["PK", "SK", "GSI1PK", "GSI1SK"]

    done = cli("load", str(a), "--workers", "2", "--json", "--checkpoint", str(tmp_path / "ck"), env=stack_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["workers"] == 2
    assert (report["lines"], report["written"], report["rejected"]) == (lines, lines, 0)
    assert _count(table) == lines

    name = first["name"]
    reviews = [json.loads(x) for x in a.read_text().splitlines()]
    newest = sorted((r for r in reviews if r.get("restaurant") == name),
                    key=lambda r: (r["created_at"], r["id"]), reverse=True)[:5]
    got = cli("get", name, "--json", env=stack_env)
    assert got.returncode == 0, got.stderr
    assert [r["id"] for r in json.loads(got.stdout)["reviews"]] == [r["id"] for r in newest]


def test_resume_after_the_loader_is_killed(cli, stack_env, table, tmp_path):
    path = tmp_path / "big.jsonl"
    lines = _generate(cli, stack_env, path, restaurants=1500, seed=3)
    checkpoint = tmp_path / "big.checkpoint"
    args = [str(BIN / "cachewarm"), "load", str(path), "--workers", "2", "--checkpoint", str(checkpoint)]
    loader = subprocess.Popen(args, env=stack_env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (checkpoint.exists() and len(checkpoint.read_text().splitlines()) >= 4):
            assert loader.poll() is None, "the load ended before it could be killed; use a bigger file"
            assert time.monotonic() < deadline, "no progress recorded"
            time.sleep(0.05)
    finally:
        os.killpg(loader.pid, signal.SIGKILL)  # the loader and its writer processes
        loader.wait()
    finished_before = len(checkpoint.read_text().splitlines()) - 1
    assert finished_before >= 3 and _count(table) < lines

    resumed = cli("load", str(path), "--resume", "--json", "--checkpoint", str(checkpoint), env=stack_env,
                  timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["resumed_lines"] > 0
    assert (report["lines"], report["written"], report["rejected"]) == (lines, lines, 0)
    assert _count(table) == lines
    assert not checkpoint.exists()


def test_load_invalidates_the_summaries_it_touches_and_fills_nothing(cli, stack_env, table, live_settings,
                                                                       tmp_path):
    from cachewarm import service
    from cachewarm.cache import NO_VALUE

    path = tmp_path / "small.jsonl"
    _generate(cli, stack_env, path, restaurants=5, seed=1)
    assert cli("load", str(path), "--checkpoint", str(tmp_path / "ck"), env=stack_env).returncode == 0
    engine = service.engine(live_settings)
    names = [json.loads(x)["name"] for x in path.read_text().splitlines() if '"GSI1SK": "REST#' in x]
    assert all(engine.peek(name) is NO_VALUE for name in names)  # write-around: nothing was filled
    name = names[0]
    assert json.loads(cli("get", name, "--json", env=stack_env).stdout)["source"] == "db"
    assert json.loads(cli("get", name, "--json", env=stack_env).stdout)["source"] == "cache"

    newest = {"PK": "USER#latecomer", "SK": f"REST#{name}", "GSI1PK": f"REST#{name}",
              "GSI1SK": "#REVIEW#" + "f" * 40, "id": "f" * 40, "restaurant": name, "username": "latecomer",
              "rating": 5, "review": "newest of all", "created_at": "2030-01-01T00:00:00"}
    update = tmp_path / "update.jsonl"
    update.write_text(json.dumps(newest) + "\n")
    assert cli("load", str(update), "--checkpoint", str(tmp_path / "ck2"), env=stack_env).returncode == 0
    assert engine.peek(name) is NO_VALUE
    after = json.loads(cli("get", name, "--json", env=stack_env).stdout)
    assert after["source"] == "db" and after["reviews"][0]["id"] == "f" * 40


def test_a_load_succeeds_when_the_cache_is_down_and_says_what_may_be_stale(cli, stack_env, table, tmp_path):
    path = tmp_path / "small.jsonl"
    _generate(cli, stack_env, path, restaurants=4, seed=2)
    env = dict(stack_env, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    done = cli("load", str(path), "--checkpoint", str(tmp_path / "ck"), env=env)
    assert done.returncode == 0, done.stderr
    assert "warning: the cache was unavailable, so 4 restaurant summaries were not invalidated" in done.stderr
    assert "Traceback" not in done.stderr


def test_async_load_through_a_worker(cli, worker, stack_env, table, messy_file, tmp_path, celery_client):
    path, _ = messy_file
    rejects = tmp_path / "async-rejects.jsonl"
    done = cli("load", str(path), "--async", "--wait", "--chunk-lines", "150", "--rejects", str(rejects),
               env=stack_env, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1,000 lines, 983 written, 17 rejected" in done.stdout
    for number in BAD_LINES:
        assert f"line {number}: " in done.stderr
    assert [json.loads(x)["line"] for x in rejects.read_text().splitlines()] == sorted(BAD_LINES)
    assert not list(tmp_path.glob("async-rejects.jsonl.part-*"))  # merged, then removed
    assert _count(table) == 983

    again = cli("load", str(path), "--async", "--rejects", str(rejects), env=stack_env)
    assert again.returncode == 0, again.stderr
    task_id = again.stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", task_id)
    result = celery_client.AsyncResult(task_id).get(timeout=300)  # the id printed ends with the merged report
    assert (result["lines"], result["written"], result["rejected"]) == (1000, 983, 17)
    assert result["chunks"] == 1  # the default chunk size holds the whole file
    assert result["load_id"] == task_id
    assert [r["line"] for r in result["sample_rejects"]] == sorted(BAD_LINES)
    chunk = celery_client.AsyncResult(f"{task_id}-chunk-0")  # the canvas: one load_chunk, then merge_load
    assert chunk.state == "SUCCESS" and chunk.result["lines"] == 1000
    assert _count(table) == 983  # idempotent: the same table after a second load


@pytest.mark.engine_matrix
def test_an_async_load_is_a_canvas_of_chunks_whose_progress_shows_on_one_id(cli, worker, stack_env, table,
                                                                           tmp_path, celery_client):
    path = tmp_path / "items.jsonl"
    lines = _generate(cli, stack_env, path, restaurants=300, seed=9)
    done = cli("load", str(path), "--async", "--chunk-lines", "500", "--rejects", str(tmp_path / "r.jsonl"),
               env=stack_env)
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    result = celery_client.AsyncResult(task_id)
    seen: list[dict] = []
    deadline = time.monotonic() + 300
    while result.state != "SUCCESS":
        assert result.state != "FAILURE", result.result
        assert time.monotonic() < deadline, "the load did not finish"
        if result.state == "PROGRESS":
            seen.append(result.info)
        time.sleep(0.05)
    report = result.get(timeout=10)
    chunks = -(-lines // 500)
    assert (report["lines"], report["written"], report["rejected"], report["chunks"]) == (lines, lines, 0, chunks)
    assert seen, "no PROGRESS on the followed id while chunks ran"
    assert {"done", "total", "chunks", "chunks_done", "load_id"} <= set(seen[-1])
    assert all(m["total"] == lines and m["chunks"] == chunks and 0 <= m["done"] <= lines for m in seen)
    assert max(m["done"] for m in seen) > 0
    assert [celery_client.AsyncResult(f"{task_id}-chunk-{i}").state for i in range(chunks)] == ["SUCCESS"] * chunks
    log = worker.log()
    assert "cachewarm.merge_load" in log and f"{task_id}-chunk-{chunks - 1}" in log
    assert _count(table) == lines
    assert not (tmp_path / "r.jsonl").exists()  # nothing rejected, so no rejects file


def test_async_with_the_broker_down_is_one_clear_line(cli, stack_env, table, tmp_path):
    path = tmp_path / "small.jsonl"
    _generate(cli, stack_env, path, restaurants=2, seed=4)
    env = dict(stack_env, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    done = cli("load", str(path), "--async", env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "cachewarm.bulk_load was not queued on the broker" in done.stderr and "Traceback" not in done.stderr

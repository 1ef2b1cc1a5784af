"""Issue 7, fault 6: DynamoDB (dynalite, persisting to disk) SIGKILLed in the middle of a load, then restarted.

The load (``cachewarm load --async``: a canvas of load_chunk tasks and a
merge_load callback) rides out the outage and completes; the table then equals the source.
Nothing is recorded as done early: every chunk the load state called finished
while DynamoDB was down is, item for item, in the table DynamoDB came back with.
"""

from __future__ import annotations

import json
import time

import pytest

from cachewarm import service
from cachewarm.settings import Settings
from devstack.localstack import start_dynalite
from tests.support.celery_procs import celery_app_for, start_worker
from tests.support.cli import generate
from tests.support.tables import digest, source_items, table_items
from tests.support.waiting import wait_until
from workers.fanout import LoadProgress, make_plan

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = 4


@pytest.fixture
def own_dynalite(tmp_path):
    """A dynalite of this test's own, with its data on disk (``--path``), so it can die and come back."""
    workdir = tmp_path / "dynalite"
    servers = [start_dynalite(workdir, persist=True)]

    def restart():
        port = int(servers[0].url.rsplit(":", 1)[1])
        servers.append(start_dynalite(workdir, port=port, persist=True, name=f"dynalite-{len(servers)}"))
        return servers[-1]

    yield servers[0], restart
    for server in servers:
        server.stop()


def missing_keys(repo, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The keys BatchGetItem does not find (strongly consistent)."""
    missing = []
    for start in range(0, len(keys), 100):
        wanted = {(pk, sk) for pk, sk in keys[start:start + 100]}
        request = {repo.table_name: {"Keys": [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in wanted],
                                     "ConsistentRead": True, "ProjectionExpression": "PK, SK"}}
        found = set()
        while request:
            page = repo.client.batch_get_item(RequestItems=request)
            found |= {(i["PK"]["S"], i["SK"]["S"]) for i in page["Responses"].get(repo.table_name, [])}
            request = page.get("UnprocessedKeys") or {}
        missing += sorted(wanted - found)
    return missing


def test_dynamodb_killed_mid_load_then_back_the_load_completes(own_dynalite, rel_env, ledger, celery_proc, cli,
                                                               tmp_path, record):
    server, restart = own_dynalite
    # Two attempts per request in botocore, so the loader's own retries carry the outage and show in the report.
    env = {**rel_env, "AWS_ENDPOINT_URL_DYNAMODB": server.url, "DYNAMODB_MAX_ATTEMPTS": "2"}
    settings = Settings.from_env(env)
    repo = service.repository(settings)
    repo.create_table()
    path = tmp_path / "items.jsonl"
    lines = generate(cli, env, path, restaurants=300, reviews=20, seed=21)
    raw_lines = path.read_bytes().split(b"\n")
    start_worker(celery_proc, env)
    submitted = cli("load", str(path), "--async", "--chunk-lines", "500", "--rejects", str(tmp_path / "r.jsonl"),
                    env=env)
    assert submitted.returncode == 0, submitted.stderr
    load_id = submitted.stdout.strip()

    wait_until(lambda: ledger.successes("cachewarm.load_chunk"), 60, "the first chunk to finish")
    server.kill()
    down_at = time.time()
    state = LoadProgress.for_settings(settings, load_id)
    time.sleep(OUTAGE_SECONDS / 2)
    done_while_down, _ = state.snapshot()  # what the load state calls finished while DynamoDB is gone
    plan = make_plan(str(path), settings=settings, chunk_lines=500)  # the plan the load made
    time.sleep(OUTAGE_SECONDS / 2)
    assert len(done_while_down) < len(plan["chunks"]), "the kill should land mid-load"

    restart()
    back_at = time.time()
    # Nothing recorded as done early: every line of every finished chunk is in the table that came back.
    firsts = [c["first_line"] for c in plan["chunks"]] + [lines + 1]
    keys = []
    for index in done_while_down:
        for number in range(firsts[index], firsts[index + 1]):
            item = json.loads(raw_lines[number - 1])
            keys.append((item["PK"], item["SK"]))
    assert missing_keys(repo, keys) == []

    wait_until(lambda: ledger.successes()[load_id], 180, "the load to complete after the restart")
    completed = ledger.success_times("cachewarm.merge_load")[-1] - back_at
    app = celery_app_for(env)
    report = app.AsyncResult(load_id).get(timeout=30)
    app.close()
    assert (report["lines"], report["written"], report["rejected"]) == (lines, lines, 0)
    assert digest(table_items(repo)) == digest(source_items(path))
    assert report["retries"] > 0  # the outage was ridden out by retrying, and the report says so
    # IGNORED: the bulk load's own run, which ends by replacing itself with its canvas.
    failed = [r for r in ledger.records() if r["event"] == "end" and r.get("state") not in ("SUCCESS", "IGNORED")]
    record(lines=lines, chunks=len(plan["chunks"]), done_before_kill=len(done_while_down),
           outage_s=round(back_at - down_at, 2), completed_after_restart_s=round(completed, 1),
           reported_retries=report["retries"], task_failures_or_retries=len(failed),
           duplicates=ledger.duplicates(), lost=0)

"""Issue 5: the benchmark through a real worker, stored durably, shown after Redis loses everything."""

from __future__ import annotations

import json

import pytest
import redis

from tests.support.items import seed_restaurants

pytestmark = pytest.mark.integration


def test_bench_wait_json_plot_then_survives_a_redis_wipe(cli, worker, stack_env, table, tmp_path):
    seed_restaurants(table)
    png = tmp_path / "out.png"
    result = cli("bench", "--sample", "10", "--wait", "--json", "--plot", str(png), env=stack_env, timeout=180)
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    for key in ("db_ms", "miss_ms", "hit_ms"):
        assert set(run[key]) >= {"p50", "p90", "p99", "mean", "max"}
        assert run[key]["n"] == 10
    assert run["hit_ms"]["p50"] < run["db_ms"]["p50"]
    assert run["hit_ratio"] == 1.0
    assert len(set(run["names"])) == 10 and all(n.startswith("Bench ") for n in run["names"])
    assert "local" not in json.dumps(run["environment"])  # credentials never recorded
    assert run["environment"]["item_count"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Redis restarted empty: the run lives in DynamoDB.
    redis.Redis.from_url(stack_env["REDIS_URL"]).flushdb()
    shown = cli("bench", "show", run["run_id"], "--json", env=stack_env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["db_ms"] == run["db_ms"]
    listed = json.loads(cli("bench", "list", "--json", env=stack_env).stdout)
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    missing = cli("bench", "show", "nope", env=stack_env)
    assert missing.returncode == 1 and "no benchmark run" in missing.stderr


@pytest.mark.engine_matrix
def test_celery_call_runs_the_benchmark(worker, stack_env, table, celery_client):
    import subprocess

    from tests.support.cli import BIN

    seed_restaurants(table, restaurants=12, reviews=2)
    call = subprocess.run([str(BIN / "celery"), "-A", "workers", "call", "cachewarm.run_benchmark",
                           "--kwargs", '{"sample": 5}'], env=stack_env, capture_output=True, text=True, timeout=60)
    assert call.returncode == 0, call.stderr
    summary = celery_client.AsyncResult(call.stdout.strip()).get(timeout=120)
    assert summary["sample"] == 5
    assert "samples" not in summary

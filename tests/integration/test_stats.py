"""Issue 6: ``cachewarm stats`` on a live stack: reads, a warm, beat and a benchmark through a real worker."""

from __future__ import annotations

import json
import secrets
import uuid

import pytest

from cachewarm import service
from cachewarm.clients import cache_redis
from cachewarm.keys import KeySchema
from cachewarm.stats import TaskRuns
from devstack.localstack import start_redis
from tests.support.items import seed_restaurants
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SCHEDULED = ("cachewarm.warm_hot", "cachewarm.invalidate_stale", "cachewarm.run_benchmark")


@pytest.mark.engine_matrix
@pytest.mark.topology_matrix
def test_stats_after_reads_a_warm_beat_and_a_benchmark(cli, worker, celery_proc, stack_env, live_settings, table):
    seed_restaurants(table, restaurants=12, reviews=3)
    warmed = cli("warm", "Bench 000", "Bench 001", "Bench 002", "--wait", "--json", env=stack_env)
    assert warmed.returncode == 0, warmed.stderr

    engine = service.engine(live_settings)
    for name in ["Bench 000"] * 3 + ["Bench 001"] * 2 + ["Bench 007"] * 2:
        engine.fetch(name)  # Bench 007 was not warmed: one miss, then a hit
    engine.flush()

    # Beat (redbeat) runs an interval entry one interval after it starts; the benchmark stays at 04:00.
    beat_env = dict(stack_env, WARM_HOT_SCHEDULE="2", INVALIDATE_STALE_SCHEDULE="2")
    celery_proc(["beat", "--loglevel=INFO"], beat_env)
    runs = TaskRuns(cache_redis(live_settings), KeySchema(prefix=live_settings.key_prefix))

    def scheduled_runs_recorded():
        done = {r["task"]: r for r in runs.last_runs() if r["state"] == "SUCCESS"}
        return all(task in done for task in ("cachewarm.warm_hot", "cachewarm.invalidate_stale"))

    wait_until(scheduled_runs_recorded, 120, "warm_hot and invalidate_stale runs recorded by the worker", interval=0.5)
    bench = cli("bench", "--sample", "5", "--wait", "--json", env=beat_env, timeout=180)
    assert bench.returncode == 0, bench.stderr

    done = cli("stats", "--json", env=beat_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)

    five = report["windows"]["5m"]
    assert five["reads"] == 7 and five["misses"] == 1 and five["hits"] == 6
    assert report["hit_ratio"]["5m"] == pytest.approx(6 / 7, abs=1e-3)
    assert report["hit_ratio"]["24h"] == report["hit_ratio"]["5m"]
    assert five["fills"] >= 4 and five["fill_ms_avg"] > 0
    assert set(report["hit_ratio"]) == {"1m", "5m", "1h", "24h"}

    assert report["keys"]["summaries"] >= 4
    assert report["keys"]["db_keys"] >= report["keys"]["summaries"]
    memory = report["memory"]
    assert memory["used_memory"] > 0 and memory["maxmemory_policy"]
    assert memory["evicted_keys"] == 0

    hot = [h["name"] for h in report["hot_keys"]]
    assert hot[0] == "Bench 000" and set(hot[1:3]) == {"Bench 001", "Bench 007"}

    tasks = {t["task"]: t for t in report["tasks"]}
    assert set(SCHEDULED) | {"cachewarm.warm_names"} <= set(tasks)
    for name in (*SCHEDULED, "cachewarm.warm_names"):
        assert tasks[name]["state"] == "SUCCESS", tasks[name]
        assert tasks[name]["last_run"] and tasks[name]["runtime_s"] >= 0 and tasks[name]["worker"]
        assert tasks[name]["failures"] == 0
    assert tasks["cachewarm.run_benchmark"]["result"]["sample"] == 5
    assert tasks["cachewarm.run_benchmark"]["result"]["run_id"] == json.loads(bench.stdout)["run_id"]
    assert tasks["cachewarm.warm_names"]["result"]["requested"] == 3
    assert tasks["cachewarm.warm_hot"]["result"]["names"] == 3
    audit = tasks["cachewarm.invalidate_stale"]["result"]  # the consistency audit's last report
    assert audit["checked"] >= 1 and audit["stale"] == 0 and audit["wrapped"] is True  # "stale": a list's length

    # The audit ran every 2 s over the 4 cached summaries, none of them changed at the source.
    consistency = report["consistency"]
    assert set(consistency["windows"]) == {"1m", "5m", "1h", "24h"}
    day = consistency["windows"]["24h"]
    assert day["checked"] >= 4 and day["stale"] == 0 and day["stale_fraction"] == 0.0
    assert set(day) == {"checked", "stale", "stale_fraction", "feed_records", "feed_ignored", "feed_invalidated"}
    assert set(consistency["feed_lag"]) == {"count", "p50_ms", "p99_ms"}
    assert five["refused_hold"] == 0

    schedule = {e["name"]: e for e in report["schedule"]}
    assert set(schedule) == {"warm-hot", "invalidate-stale", "benchmark"}
    assert all(e["source"] == "redbeat" for e in schedule.values())
    warm_hot = schedule["warm-hot"]
    assert warm_hot["task"] == "cachewarm.warm_hot" and warm_hot["schedule"] == "every 2s"
    assert warm_hot["total_run_count"] >= 1 and warm_hot["next_run_at"] > warm_hot["last_run_at"]
    benchmark = schedule["benchmark"]
    assert benchmark["schedule"] == "crontab 0 4 * * * (UTC)" and benchmark["total_run_count"] == 0
    assert benchmark["last_run_at"] is None and benchmark["next_run_at"].endswith("T04:00:00+00:00")
    assert report["errors"] == {}

    text = cli("stats", env=beat_env)
    assert text.returncode == 0, text.stderr
    for expected in ("cache reads", "85.7%", "Bench 000", "cachewarm.run_benchmark", "SUCCESS", "warm-hot",
                     "every 2s", "keys and memory", "consistency (audit and change feed)", "refused hold"):
        assert expected in text.stdout, expected


def test_passwords_are_masked_in_stats_and_worker_logs(cli, celery_proc, stack_env, table, tmp_path):
    from workers.app import create_app

    secret = "pw-" + secrets.token_hex(6)
    redis = start_redis(tmp_path / "redis-auth", extra_args=["--requirepass", secret])
    try:
        env = dict(stack_env, REDIS_URL=redis.url.replace("redis://", f"redis://:{secret}@"))
        worker = celery_proc(["worker", "--loglevel=INFO", "--concurrency=1", "--without-mingle",
                              "--without-gossip", f"--hostname=auth-{uuid.uuid4().hex[:6]}@%h"], env)
        worker.wait_for("ready.")
        from cachewarm.settings import Settings

        client = create_app(Settings.from_env(env))
        try:
            assert client.send_task("cachewarm.warm_names", args=[["Nowhere"]]).get(timeout=60)["not_found"]
        finally:
            client.close()
        worker.wait_for("warm_names: 1 requested")

        as_json = cli("stats", "--json", env=env)
        as_text = cli("stats", env=env)
        for done in (as_json, as_text):
            assert done.returncode == 0, done.stderr
            assert secret not in done.stdout + done.stderr
        report = json.loads(as_json.stdout)
        assert report["cache"].startswith("redis://:***@127.0.0.1:")
        assert {t["task"]: t["state"] for t in report["tasks"]}["cachewarm.warm_names"] == "SUCCESS"
        assert "redis://:***@127.0.0.1" in as_text.stdout

        wrong = cli("stats", env=dict(env, REDIS_URL=redis.url.replace("redis://", "redis://:not-it-either@")))
        assert wrong.returncode == 1
        assert wrong.stderr.startswith("error: cannot reach the cache's Redis at redis://:***@127.0.0.1")
        assert "not-it-either" not in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1

        worker.stop()
        assert secret not in worker.log()
        assert "redis://:**@127.0.0.1" in worker.log()  # Celery's banner masks too
    finally:
        redis.stop()

"""``cachewarm exporter`` on a live stack: a real process scraped over HTTP while real reads move its counters."""

from __future__ import annotations

import re
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cachewarm import service
from devstack.localstack import PROJECT_ROOT
from tests.support.cli import BIN
from tests.support.items import seed_restaurants
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape, parsed by prometheus_client's own parser: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def exporter(stack_env):
    """``cachewarm exporter --port 0`` running on this test's stack; yields its /metrics URL."""
    proc = subprocess.Popen([str(BIN / "cachewarm"), "exporter", "--port", "0"], env=stack_env, cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", line)
        assert found, (line, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        yield proc, found.group(1)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.engine_matrix
def test_counters_move_with_real_reads_and_the_queues_are_seen(exporter, stack_env, live_settings, table):
    proc, url = exporter
    seed_restaurants(table, restaurants=3, reviews=2)
    before = scrape(url)
    assert before[("cachewarm_cache_up", ())] == 1 and before[("cachewarm_broker_up", ())] == 1
    start = {name: before.get((name, ()), 0) for name in
             ("cachewarm_cache_hits_total", "cachewarm_cache_misses_total", "cachewarm_cache_reads_total",
              "cachewarm_cache_fills_total", "cachewarm_cache_invalidations_total")}

    engine = service.engine(live_settings)
    for name in ["Bench 000"] * 4 + ["Bench 001"] * 3:  # 2 misses (and fills), 5 hits
        engine.fetch(name)
    engine.invalidate("Bench 001")
    engine.flush()
    # A message in a Celery queue (as kombu's Redis transport keeps it: a list named after the queue).
    import redis

    redis.Redis.from_url(stack_env["REDIS_URL"]).lpush("maintenance", "{}")

    after = scrape(url)
    moved = {name: after[(name, ())] - start[name] for name in start}
    assert moved == {"cachewarm_cache_hits_total": 5, "cachewarm_cache_misses_total": 2,
                     "cachewarm_cache_reads_total": 7, "cachewarm_cache_fills_total": 2,
                     "cachewarm_cache_invalidations_total": 1}
    assert after[("cachewarm_cache_hit_ratio", (("window", "5m"),))] == pytest.approx(5 / 7, abs=1e-3)
    # Counted by SCAN at the first scrape (none cached then) and kept for KEY_COUNT_SECONDS.
    assert after[("cachewarm_cache_summaries", ())] == 0
    assert after[("cachewarm_redis_memory_used_bytes", ())] > 0
    assert after[("celery_queue_length", (("queue_name", "maintenance"),))] == 1
    assert after[("celery_queue_length", (("queue_name", "warm"),))] == 0
    assert after[("cachewarm_cache_l1_hits_total", ())] >= 0

    # SIGTERM (honcho, docker, ECS) stops it cleanly: exit 0, after saying so.
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert "exporter: stopped" in proc.stdout.read()


def test_the_cli_reads_show_up_too(exporter, cli, stack_env, table):
    _, url = exporter
    seed_restaurants(table, restaurants=1, reviews=1)
    start = scrape(url).get(("cachewarm_cache_reads_total", ()), 0)
    for _ in range(2):
        done = cli("get", "Bench 000", "--json", env=stack_env)
        assert done.returncode == 0, done.stderr
    # Each `cachewarm get` flushes its tallies at exit.
    wait_until(lambda: scrape(url)[("cachewarm_cache_reads_total", ())] - start == 2, 10, "2 reads counted")
    assert scrape(url)[("cachewarm_cache_hits_total", ())] >= 1

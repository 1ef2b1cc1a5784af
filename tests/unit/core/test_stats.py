"""cachewarm.stats and the Flower settings, without servers (fakeredis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from cachewarm.errors import ConfigError
from cachewarm.keys import KeySchema
from cachewarm.metrics import BUCKET_SECONDS, Metrics
from cachewarm.settings import ENV_VARS, Settings
from cachewarm.stats import (
    TASK_RUN_TTL,
    TaskRuns,
    collect,
    consistency_summary,
    feed_lag,
    hit_ratios,
    memory,
    summarize_result,
    window_summary,
)

NOW = 1_800_000_000.0  # a fixed instant, on a minute boundary plus 30 s
KEYS = KeySchema("cw")


def put_bucket(r, minutes_ago: int, **counters):
    key = Metrics(r, KEYS).bucket_key(NOW - minutes_ago * BUCKET_SECONDS)
    for field, value in counters.items():
        r.hincrby(key, field, value)


# -- hit ratio ---------------------------------------------------------------------
def test_window_summary_counts_db_reads_as_non_hits():
    w = window_summary({"reads": 100, "misses": 5, "wait_timeouts": 2, "early_refreshes": 3, "waits": 4,
                        "fills": 40, "fill_us": 24_000})
    assert w["hits"] == 90 and w["hit_ratio"] == 0.9
    assert w["fill_ms_avg"] == 3.0  # 24 ms over the 8 fills that read DynamoDB for a reader
    assert w["waits"] == 4 and w["fills"] == 40 and "fill_us" not in w


def test_window_summary_shows_fills_refused_during_the_change_feeds_hold_off():
    w = window_summary({"reads": 10, "misses": 3, "refused_hold": 2, "refused_lease": 1})
    assert w["refused_hold"] == 2 and w["refused_lease"] == 1 and w["refused_floor"] == 0
    assert window_summary({})["refused_hold"] == 0


def test_window_summary_without_reads_has_no_ratio_and_never_goes_negative():
    assert window_summary({})["hit_ratio"] is None
    assert window_summary({})["fill_ms_avg"] is None
    w = window_summary({"reads": 2, "misses": 5})  # sampled reads can undercount
    assert w["hits"] == 0 and w["hit_ratio"] == 0.0


def test_hit_ratios_sum_the_minutes_of_each_window(r):
    put_bucket(r, 0, reads=10, misses=1)
    put_bucket(r, 3, reads=10, misses=9)
    put_bucket(r, 30, reads=80)
    put_bucket(r, 26 * 60, reads=1000)  # older than a day: outside every window
    ratios = hit_ratios(Metrics(r, KEYS), NOW)
    assert set(ratios) == {"1m", "5m", "1h", "24h"}
    assert ratios["1m"]["reads"] == 10 and ratios["1m"]["hit_ratio"] == 0.9
    assert ratios["5m"]["reads"] == 20 and ratios["5m"]["hit_ratio"] == 0.5
    assert ratios["1h"]["reads"] == 100 and ratios["1h"]["hit_ratio"] == 0.9
    assert ratios["24h"]["reads"] == 100


# -- consistency ----------------------------------------------------------------------
def test_consistency_summary_has_the_audits_stale_fraction_and_the_feeds_counters():
    c = consistency_summary({"audit_checked": 400, "audit_stale": 3, "feed_records": 9, "feed_ignored": 2,
                             "feed_invalidated": 7, "reads": 50})
    assert c == {"checked": 400, "stale": 3, "stale_fraction": 0.0075, "feed_records": 9, "feed_ignored": 2,
                 "feed_invalidated": 7}
    assert consistency_summary({}) == {"checked": 0, "stale": 0, "stale_fraction": None, "feed_records": 0,
                                       "feed_ignored": 0, "feed_invalidated": 0}


def test_feed_lag_percentiles_from_the_newest_samples(r):
    key = KEYS.stats("feed:lag")
    assert feed_lag(r, KEYS) == {"count": 0, "p50_ms": None, "p99_ms": None}
    r.lpush(key, *(f"{ms:.1f}" for ms in range(1, 101)), "not-a-number", "nan")  # newest first: "nan"
    r.expire(key, 3600)
    assert feed_lag(r, KEYS) == {"count": 100, "p50_ms": 50.5, "p99_ms": 99.01}
    # Only the newest samples count: here the 3 newest, one of them unreadable.
    assert feed_lag(r, KEYS, samples=3) == {"count": 1, "p50_ms": 100.0, "p99_ms": 100.0}


def test_collect_reports_consistency_per_window_and_only_reads(r):
    put_bucket(r, 0, audit_checked=20, audit_stale=1, feed_records=5, feed_invalidated=4, feed_ignored=1)
    put_bucket(r, 3, audit_checked=20, audit_stale=0)
    put_bucket(r, 90, audit_checked=60, audit_stale=1)
    r.lpush(KEYS.stats("feed:lag"), "12.5", "3.0", "7.5")
    before = {key: r.dump(key) for key in r.scan_iter()}
    report = collect(r, KEYS, now=NOW)
    windows = report["consistency"]["windows"]
    assert set(windows) == {"1m", "5m", "1h", "24h"}
    assert windows["1m"] == {"checked": 20, "stale": 1, "stale_fraction": 0.05, "feed_records": 5,
                             "feed_ignored": 1, "feed_invalidated": 4}
    assert (windows["5m"]["checked"], windows["5m"]["stale"], windows["5m"]["stale_fraction"]) == (40, 1, 0.025)
    assert (windows["1h"]["checked"], windows["24h"]["checked"], windows["24h"]["stale"]) == (40, 100, 2)
    assert report["consistency"]["feed_lag"] == {"count": 3, "p50_ms": 7.5, "p99_ms": 12.4}
    assert report["windows"]["1m"]["reads"] == 0  # the audit's counters are not reads
    assert {key: r.dump(key) for key in r.scan_iter()} == before  # stats only reads
    json.dumps(report)


# -- memory -------------------------------------------------------------------------
class Restricted:
    """A client on which INFO and CONFIG are refused (ACLs, renamed commands)."""

    def info(self, section):
        raise NoPermissionError("NOPERM this user has no permissions to run the 'info' command")

    def config_get(self, name):
        raise ResponseError("unknown command 'CONFIG'")


class Info:
    def __init__(self, policy):
        self.policy = policy

    def info(self, section):
        if section == "memory":
            return {"used_memory": 1024, "used_memory_human": "1.00K", "maxmemory": 1 << 30,
                    "maxmemory_human": "1.00G", "maxmemory_policy": self.policy}
        return {"evicted_keys": 7, "expired_keys": 3}


def test_memory_when_info_and_config_are_refused():
    m = memory(Restricted())
    assert m["used_memory"] is None and m["evicted_keys"] is None and m["maxmemory_policy"] is None
    assert "cannot read maxmemory-policy" in m["eviction_warning"]


def test_memory_reports_evictions_and_warns_about_allkeys_policies():
    assert memory(Info("volatile-lfu")) == {
        "used_memory": 1024, "used_memory_human": "1.00K", "maxmemory": 1 << 30, "maxmemory_human": "1.00G",
        "maxmemory_policy": "volatile-lfu", "evicted_keys": 7, "expired_keys": 3, "eviction_warning": None,
        "shards": 1,
    }
    assert "allkeys-lru" in memory(Info("allkeys-lru"))["eviction_warning"]


# -- task runs -----------------------------------------------------------------------
def test_task_runs_round_trip_with_ttl_counts_and_summaries(r):
    runs = TaskRuns(r, KEYS)
    runs.record("cachewarm.warm_names", task_id="a", state="SUCCESS", runtime=0.25, worker="w@h", now=NOW,
                result={"requested": 3, "warmed": ["A", "B"], "not_found": ["C"], "seconds": 0.1})
    runs.record("cachewarm.warm_names", task_id="b", state="FAILURE", runtime=0.5, now=NOW + 60,
                error=ConnectionError("cannot reach redis://:hunter2@cache:6379/0"))
    [run] = runs.last_runs()
    assert run["task"] == "cachewarm.warm_names" and run["state"] == "FAILURE" and run["task_id"] == "b"
    assert run["last_run"] == datetime.fromtimestamp(NOW + 60, UTC).isoformat(timespec="seconds")
    assert run["runtime_s"] == 0.5 and run["runs"] == 2 and run["failures"] == 1
    assert run["error"] == "ConnectionError: cannot reach redis://:***@cache:6379/0"
    assert run["result"] is None
    for key in (runs.key("cachewarm.warm_names"), runs.index_key):
        assert 0 < r.ttl(key) <= TASK_RUN_TTL


def test_last_runs_lists_scheduled_tasks_that_never_ran(r):
    runs = TaskRuns(r, KEYS)
    runs.record("cachewarm.warm_hot", task_id="x", state="SUCCESS", runtime=None, result={"names": 2}, now=NOW)
    listed = runs.last_runs(also=["cachewarm.run_benchmark"])
    assert [x["task"] for x in listed] == ["cachewarm.run_benchmark", "cachewarm.warm_hot"]
    assert listed[0] == {"task": "cachewarm.run_benchmark", "state": None, "last_run": None}
    assert listed[1]["result"] == {"names": 2} and listed[1]["runtime_s"] is None


def test_summarize_result_keeps_figures_not_bodies():
    result = {"names": ["a"] * 500, "db_ms": {"p50": 3.1, "p99": {"deep": 1}}, "url": "rediss://u:p@h"}
    assert summarize_result(result) == {"names": 500, "db_ms": {"p50": 3.1, "p99": 1}, "url": "rediss://u:***@h"}
    assert summarize_result([1, 2, 3]) == 3
    assert summarize_result(None) is None
    assert len(json.dumps(summarize_result({str(i): i for i in range(1000)}))) < 400


# -- the whole report --------------------------------------------------------------------
def test_collect_reports_a_failing_section_instead_of_raising(r):
    put_bucket(r, 0, reads=4, misses=1)
    r.set(KEYS.summary("A"), "{}", ex=60)
    r.set(KEYS.summary("B*"), "{}", ex=60)
    r.set("celery-task-meta-x", "{}")  # not ours

    class BrokenHot:
        def __init__(self, *_):
            pass

        def top(self, k, now):
            raise RedisError("READONLY You can't write against a read only replica.")

    report = collect(r, KEYS, now=NOW, hot_factory=BrokenHot)
    assert report["hit_ratio"]["1m"] == 0.75
    assert report["keys"] == {"summaries": 2, "db_keys": 4}
    assert report["hot_keys"] == [] and "READONLY" in report["errors"]["hot_keys"]
    assert "schedule" not in report  # no broker given
    json.dumps(report)  # JSON-ready


def test_collect_lists_hot_keys(r):
    from cachewarm.hotkeys import HotKeys

    hot = HotKeys(r, KEYS)
    pipe = r.pipeline()
    from collections import Counter

    hot.record(pipe, Counter({"Hot": 5, "Warm": 2}), NOW)
    pipe.execute()
    report = collect(r, KEYS, now=NOW, top=1)
    assert report["hot_keys"] == [{"name": "Hot", "score": 5.0}]


def test_render_prints_names_literally(r, capsys):
    from cachewarm_cli.stats import render

    TaskRuns(r, KEYS).record("cachewarm.warm_names", task_id="t", state="SUCCESS", runtime=0.1,
                             result={"requested": 1}, now=NOW)
    report = {"cache": "redis://:***@h:6379/0", **collect(r, KEYS, now=NOW)}
    report["hot_keys"] = [{"name": "[bold]Chez Nous[/bold]", "score": 2.0}]
    render(report)
    out = capsys.readouterr().out
    assert "[bold]Chez Nous[/bold]" in out and "requested=1" in out and "redis://:***@h" in out
    assert "change feed lag: no samples yet" in out


def test_render_shows_consistency_and_hold_off_refusals(r, capsys):
    from cachewarm_cli.stats import render

    put_bucket(r, 0, reads=4, misses=2, refused_hold=2, audit_checked=400, audit_stale=3, feed_records=12,
               feed_ignored=2, feed_invalidated=10)
    r.lpush(KEYS.stats("feed:lag"), "250.0", "40.0")
    render({"cache": "redis://h:6379/0", **collect(r, KEYS, now=NOW)})
    out = capsys.readouterr().out
    assert "refused hold" in out and "consistency (audit and change feed)" in out
    row = next(line for line in out.splitlines() if "0.75%" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["1m", "400", "3", "0.75%", "12", "2", "10"]
    assert "change feed lag, write to invalidation (last 2): p50 145.0 ms, p99 247.9 ms" in out


# -- Flower settings and flowerconfig ------------------------------------------------------
def test_flower_settings_defaults_and_logins():
    s = Settings.from_env({})
    assert (s.flower_address, s.flower_port, s.flower_basic_auth, s.flower_logins) == ("127.0.0.1", 5555, None, [])
    s = Settings.from_env({"FLOWER_BASIC_AUTH": "ops:p1, dev:p:2", "FLOWER_ADDRESS": "0.0.0.0", "FLOWER_PORT": "8080"})
    assert s.flower_logins == ["ops:p1", "dev:p:2"]
    assert (s.flower_address, s.flower_port) == ("0.0.0.0", 8080)
    assert "p1" not in repr(s)
    assert {"flower_basic_auth", "flower_address", "flower_port"} <= set(ENV_VARS)


@pytest.mark.parametrize("var,value", [
    ("FLOWER_PORT", "http"), ("FLOWER_PORT", "0"), ("FLOWER_PORT", "65536"),
    ("FLOWER_ADDRESS", "local host"), ("FLOWER_ADDRESS", "a..b"),
    ("FLOWER_BASIC_AUTH", "only-a-user"), ("FLOWER_BASIC_AUTH", ":secret"), ("FLOWER_BASIC_AUTH", "u:secret,"),
])
def test_bad_flower_values_name_the_variable(var, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({var: value})
    assert info.value.variable == var and str(info.value).startswith(f"{var}=")
    if var == "FLOWER_BASIC_AUTH":
        assert "secret" not in str(info.value)

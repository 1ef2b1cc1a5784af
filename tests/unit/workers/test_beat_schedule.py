"""workers/beat_schedule.py: the beat schedule as `cachewarm stats` shows it, from redbeat's keys (fakeredis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cachewarm.settings import Settings
from workers.beat_schedule import beat_schedule, describe_schedule

NOW = 1_800_000_000.0  # a fixed instant, on a minute boundary plus 30 s


def store_redbeat_entry(r, prefix, name, task, schedule, last_run_at, runs, due):
    from redbeat.decoder import RedBeatJSONEncoder

    key = prefix + name
    definition = {"name": name, "task": task, "args": [], "kwargs": {}, "options": {}, "schedule": schedule,
                  "enabled": True}
    meta = {"last_run_at": last_run_at, **({"total_run_count": runs} if runs is not None else {})}
    r.hset(key, mapping={"definition": json.dumps(definition, cls=RedBeatJSONEncoder),
                         "meta": json.dumps(meta, cls=RedBeatJSONEncoder)})
    r.zadd(f"{prefix}:schedule", {key: due})


def test_beat_schedule_reads_redbeat_and_falls_back_to_the_config(r):
    from celery.schedules import crontab, schedule

    from workers.schedule import beat_schedule as configured

    now_dt = datetime.fromtimestamp(NOW, UTC)
    ran = now_dt - timedelta(seconds=100)
    store_redbeat_entry(r, "cw:redbeat", "warm-hot", "cachewarm.warm_hot", schedule(timedelta(seconds=180)),
                        ran, 4, NOW + 80)
    store_redbeat_entry(r, "cw:redbeat", "stuck", "cachewarm.invalidate_stale", schedule(timedelta(seconds=60)),
                        now_dt - timedelta(hours=2), 9, NOW - 3600)
    settings = Settings.from_env({"BENCHMARK_SCHEDULE": "30 4 * * *"})
    entries = {e["name"]: e for e in beat_schedule(r, "cw:redbeat", configured(settings), NOW)}

    assert set(entries) == {"warm-hot", "stuck", "invalidate-stale", "benchmark"}
    hot = entries["warm-hot"]
    assert hot["source"] == "redbeat" and hot["schedule"] == "every 180s" and hot["total_run_count"] == 4
    assert hot["last_run_at"] == ran.isoformat(timespec="seconds")
    assert hot["next_run_at"] == datetime.fromtimestamp(NOW + 80, UTC).isoformat(timespec="seconds")
    assert entries["stuck"]["overdue"] is True
    bench = entries["benchmark"]
    assert bench["source"] == "config" and bench["schedule"] == "crontab 30 4 * * * (UTC)"
    assert bench["next_run_at"].endswith("T04:30:00+00:00")
    assert entries["invalidate-stale"]["next_run_at"] is None
    assert entries["invalidate-stale"]["note"] == "60s after beat starts, then every 60s"
    assert describe_schedule(crontab(minute="*/5")) == "crontab */5 * * * * (UTC)"


def test_a_stored_entry_that_never_ran_has_no_last_run(r):
    from celery.schedules import schedule

    store_redbeat_entry(r, "p", "x", "cachewarm.warm_hot", schedule(timedelta(seconds=60)),
                        datetime.fromtimestamp(NOW, UTC), None, NOW + 60)
    [entry] = beat_schedule(r, "p", {}, NOW)
    assert entry["last_run_at"] is None and entry["total_run_count"] == 0

"""Celery configuration derived from settings: queues, routes, limits, beat."""

import pytest
from celery.schedules import crontab

from cachewarm.errors import ConfigError
from cachewarm.settings import Settings
from workers.config import QUEUES, ROUTES, TASK_TIME_LIMIT, celery_config
from workers.retry import IDEMPOTENT, RETRY_POLICY


def test_every_route_targets_a_declared_queue_and_the_worker_consumes_them_all():
    conf = celery_config(Settings())
    declared = {q.name for q in conf["task_queues"]}
    assert declared == set(QUEUES)
    assert set(ROUTES.values()) <= declared
    assert conf["task_default_queue"] in declared


def test_visibility_timeout_outlives_time_limits_and_backoff():
    conf = celery_config(Settings())
    visibility = conf["broker_transport_options"]["visibility_timeout"]
    assert visibility > conf["task_time_limit"] == TASK_TIME_LIMIT
    assert visibility > RETRY_POLICY["retry_backoff_max"]
    assert conf["task_soft_time_limit"] < conf["task_time_limit"]
    assert conf["result_expires"] > 0


def test_retry_only_for_retryable_errors():
    from cachewarm.errors import PermanentError, RetryableError

    assert RETRY_POLICY["autoretry_for"] == (RetryableError,)
    assert not issubclass(PermanentError, RetryableError)
    assert RETRY_POLICY["retry_jitter"] is True
    assert IDEMPOTENT == {"acks_late": True, "reject_on_worker_lost": True}


def test_beat_schedule_follows_settings():
    conf = celery_config(Settings.from_env({"WARM_HOT_SCHEDULE": "30", "WARM_HOT_TOP_K": "7",
                                             "INVALIDATE_STALE_SCHEDULE": "off",
                                             "BENCHMARK_SCHEDULE": "15 2 * * 1"}))
    beat = conf["beat_schedule"]
    assert beat["warm-hot"]["schedule"] == 30.0 and beat["warm-hot"]["kwargs"] == {"top": 7}
    assert "invalidate-stale" not in beat
    assert isinstance(beat["benchmark"]["schedule"], crontab)
    assert conf["beat_scheduler"] == "workers.beat:RedBeatScheduler"
    assert conf["redbeat_lock_timeout"] > conf["beat_max_loop_interval"]


def test_default_beat_schedule_has_the_three_jobs():
    beat = celery_config(Settings())["beat_schedule"]
    assert {e["task"] for e in beat.values()} == {"cachewarm.warm_hot", "cachewarm.invalidate_stale",
                                                  "cachewarm.run_benchmark"}


@pytest.mark.parametrize("value", ["every day", "* * *", "0.5"])
def test_bad_schedule_names_the_variable(value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"BENCHMARK_SCHEDULE": value})
    assert info.value.variable == "BENCHMARK_SCHEDULE"


def test_optional_reload_entry():
    assert "reload" not in celery_config(Settings())["beat_schedule"]
    assert "reload" not in celery_config(Settings.from_env({"LOAD_SCHEDULE_FILE": "s3://b/k.jsonl"}))["beat_schedule"]
    beat = celery_config(Settings.from_env({"LOAD_SCHEDULE": "0 3 * * *",
                                            "LOAD_SCHEDULE_FILE": "s3://bucket/items.jsonl.gz"}))["beat_schedule"]
    assert beat["reload"]["task"] == "cachewarm.bulk_load"
    assert beat["reload"]["kwargs"] == {"path": "s3://bucket/items.jsonl.gz"}


def test_redelivery_sweeps_follow_the_visibility_timeout():
    # A worker killed while it held kombu's sweep mutex must not block redelivery for longer
    # than the timeout itself; the default timeout keeps kombu's own 300 s and 10 s sweeps.
    default = celery_config(Settings())["broker_transport_options"]
    assert (default["visibility_timeout"], default["unacked_mutex_expire"], default["unacked_restore_interval"]) \
        == (3600, 300, 10)
    short = celery_config(Settings.from_env({"BROKER_VISIBILITY_TIMEOUT_SECONDS": "8"}))["broker_transport_options"]
    assert short["unacked_mutex_expire"] <= 4 and short["unacked_restore_interval"] == 1

"""Celery configuration derived from settings: queues, routes, limits, beat."""

import pytest
from celery.schedules import crontab

from cachewarm.errors import ConfigError
from cachewarm.settings import Settings
from workers.config import (
    QUEUES,
    ROUTES,
    TASK_TIME_LIMIT,
    TIME_LIMITS,
    VISIBILITY_MARGIN,
    celery_config,
    default_visibility_timeout,
)
from workers.retry import IDEMPOTENT, LONGEST_COUNTDOWN, RETRY_POLICY


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


def test_the_default_visibility_timeout_is_the_documented_arithmetic():
    # longest hard limit + longest countdown (the backoff cap; the worker-lost delay is 2 s) + margin:
    # minutes, not an hour. The setting's default is the same number, written out in the core.
    assert (TASK_TIME_LIMIT, LONGEST_COUNTDOWN, VISIBILITY_MARGIN) == (120, 60, 60)
    assert default_visibility_timeout() == TASK_TIME_LIMIT + LONGEST_COUNTDOWN + VISIBILITY_MARGIN == 240
    assert Settings().broker_visibility_timeout == default_visibility_timeout()
    assert celery_config(Settings())["broker_transport_options"]["visibility_timeout"] == 240
    # the override stays (the tests use seconds)
    short = celery_config(Settings.from_env({"BROKER_VISIBILITY_TIMEOUT_SECONDS": "9"}))
    assert short["broker_transport_options"]["visibility_timeout"] == 9


def test_every_task_has_a_short_hard_and_soft_time_limit():
    conf = celery_config(Settings())
    annotations = conf["task_annotations"]
    assert set(annotations) == set(ROUTES) == set(TIME_LIMITS)
    for name, limits in annotations.items():
        assert 0 < limits["soft_time_limit"] < limits["time_limit"] <= TASK_TIME_LIMIT, name
    assert TASK_TIME_LIMIT == max(TIME_LIMITS.values()) == conf["task_time_limit"]
    # Infra gives Celery's warm shutdown 120 s (infra/cachewarm_infra/workers.py): every task fits in it.
    assert TASK_TIME_LIMIT <= 120


def test_time_limits_reach_the_registered_tasks():
    from workers.app import create_app

    app = create_app(Settings())
    app.loader.import_default_modules()
    for name, hard in TIME_LIMITS.items():
        task = app.tasks[name]
        assert (task.time_limit, task.soft_time_limit) == (hard, annotations_soft(hard)), name
        assert task.max_retries == 3 and task.default_retry_delay == 2, name
    app.close()


def annotations_soft(hard: int) -> int:
    from workers.config import soft_time_limit

    return soft_time_limit(hard)


def test_a_lost_node_holds_only_running_tasks_and_lost_processes_retry():
    conf = celery_config(Settings())
    assert conf["worker_disable_prefetch"] is True and conf["worker_prefetch_multiplier"] == 1
    assert conf["task_retry_on_worker_lost"] is True


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
    # kombu sweeps every interval x throttle seconds (default 10 x 10 = 100 s): throttle 1 makes the
    # interval the period, 10 s by default. A worker killed while it held kombu's sweep mutex must not
    # block redelivery for long: 30 s by default, at most half a short timeout.
    default = celery_config(Settings())["broker_transport_options"]
    assert (default["visibility_timeout"], default["unacked_restore_interval"], default["unacked_restore_throttle"],
            default["unacked_mutex_expire"]) == (240, 10, 1, 30)
    short = celery_config(Settings.from_env({"BROKER_VISIBILITY_TIMEOUT_SECONDS": "8"}))["broker_transport_options"]
    assert short["unacked_mutex_expire"] <= 4 and short["unacked_restore_interval"] == 2
    assert short["unacked_restore_throttle"] == 1


def test_kombu_reads_the_sweep_options():
    # The names must be ones kombu's Redis channel takes from the transport options, or they do nothing.
    from kombu.transport.redis import Channel

    for option in ("unacked_restore_interval", "unacked_restore_throttle", "unacked_mutex_expire",
                   "visibility_timeout"):
        assert option in Channel.from_transport_options, option

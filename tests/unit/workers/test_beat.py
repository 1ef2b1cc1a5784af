"""workers/beat.py: redbeat's scheduler through a Redis outage, a lost lock and recovery (TestApp + fakeredis)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import fakeredis
import pytest
import redbeat.schedulers as redbeat_schedulers
from celery.contrib.testing.app import TestApp
from redbeat.schedulers import RedBeatSchedulerEntry, acquire_distributed_beat_lock

from workers import beat
from workers.beat import RETRY_SECONDS, RedBeatScheduler

MAX_INTERVAL = 5


@pytest.fixture
def server():
    return fakeredis.FakeServer()


@pytest.fixture
def app(server):
    app = TestApp(config={
        "redbeat_redis_url": "redis://fake",
        "redbeat_key_prefix": "t:redbeat",
        "redbeat_lock_timeout": 30,
        "beat_max_loop_interval": MAX_INTERVAL,
        "beat_schedule": {"often": {"task": "cachewarm.warm_hot", "schedule": 60.0}},
    })
    # redbeat builds its client once per app and keeps it here (no retrying wrapper: errors reach tick()).
    app.redbeat_redis = fakeredis.FakeRedis(server=server, decode_responses=True)
    yield app
    app.close()


@pytest.fixture
def sent(app, monkeypatch):
    """Names of the tasks beat dispatched: beat runs as usual (the entry advances), publishing is recorded."""
    names: list[str] = []
    monkeypatch.setattr(app, "send_task", lambda name, *args, **kwargs: names.append(name))
    return names


def make_due(app, name: str = "often") -> None:
    """Mark a schedule entry as never run: due now (redbeat keeps last_run_at in the entry's meta)."""
    key = RedBeatSchedulerEntry.generate_key(app, name)
    app.redbeat_redis.hset(key, "meta", json.dumps({"last_run_at": None}))
    app.redbeat_redis.zadd(app.redbeat_conf.schedule_key, {key: 0})


def start(app) -> RedBeatScheduler:
    scheduler = RedBeatScheduler(app=app)
    acquire_distributed_beat_lock(sender=SimpleNamespace(scheduler=scheduler))  # what beat_init does
    return scheduler


def test_redbeat_has_what_the_subclass_overrides():
    import importlib.metadata

    assert importlib.metadata.version("celery-redbeat") == beat.CHECKED_REDBEAT  # a new redbeat: re-check the issues
    beat.check_redbeat()
    gone = SimpleNamespace(RedBeatScheduler=type("S", (), {"tick": lambda self, **kw: 0}),
                           get_redis=redbeat_schedulers.get_redis)
    with pytest.raises(RuntimeError, match=r"tick\(self, min=min.*redbeat#208, #230, #285 and PR #314"):
        beat.check_redbeat(gone)


def test_a_connection_error_returns_the_retry_interval_logs_once_and_recovers(app, server, sent, caplog):
    scheduler = start(app)
    make_due(app)
    assert scheduler.tick() <= MAX_INTERVAL
    assert sent == ["cachewarm.warm_hot"]

    server.connected = False  # Redis restarting: every command fails with ConnectionError
    with caplog.at_level(logging.INFO, logger="workers.beat"):
        assert [scheduler.tick() for _ in range(3)] == [RETRY_SECONDS] * 3
        assert caplog.text.count("Redis unavailable") == 1

        server.connected = True
        assert scheduler.tick() <= MAX_INTERVAL
    assert "Redis is back" in caplog.text
    assert sent == ["cachewarm.warm_hot"]  # not due again within its period: nothing dispatched twice
    assert scheduler.lock.owned()


def test_a_lost_lock_taken_by_another_beat_stands_by_until_it_is_free(app, server, sent, caplog):
    scheduler = start(app)
    make_due(app)
    scheduler.tick()
    other = fakeredis.FakeRedis(server=server, decode_responses=True)
    other.set(scheduler.lock_key, "another-beat", ex=30)  # ours expired while Redis was away; another beat took it
    make_due(app)
    with caplog.at_level(logging.INFO, logger="workers.beat"):
        assert scheduler.tick() == MAX_INTERVAL
        assert scheduler.tick() == MAX_INTERVAL
    assert caplog.text.count("standing by") == 1
    assert sent == ["cachewarm.warm_hot"]  # the standby dispatched nothing

    other.delete(scheduler.lock_key)  # the other beat stopped
    assert scheduler.tick() <= MAX_INTERVAL
    assert scheduler.lock.owned()
    assert sent == ["cachewarm.warm_hot", "cachewarm.warm_hot"]


def test_a_lock_redis_came_back_without_is_taken_back(app, server, sent):
    scheduler = start(app)
    server.connected = False
    assert scheduler.tick() == RETRY_SECONDS
    server.connected = True
    fakeredis.FakeRedis(server=server).flushall()  # it restarted without persistence: no lock, no schedule
    assert scheduler.tick() <= MAX_INTERVAL
    assert scheduler.lock.owned()


def test_a_failed_start_up_acquisition_is_retried_by_tick_not_a_crash(app, server, sent):
    """redbeat#285: beat_init's error is swallowed, leaving lock None; redbeat's tick() would raise AttributeError."""
    scheduler = RedBeatScheduler(app=app)
    make_due(app)
    assert scheduler.lock is None and scheduler.lock_key
    server.connected = False
    assert scheduler.tick() == RETRY_SECONDS
    server.connected = True
    assert scheduler.tick() <= MAX_INTERVAL
    assert scheduler.lock.owned()
    assert sent == ["cachewarm.warm_hot"]


def test_close_during_an_outage_does_not_raise(app, server):
    scheduler = start(app)
    server.connected = False
    scheduler.close()
    assert scheduler.lock is None

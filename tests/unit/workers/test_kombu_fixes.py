"""workers/kombu_fixes.py: the patched surface of kombu's Redis transport, and what the patches do."""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from contextlib import contextmanager
from types import SimpleNamespace

import kombu
import pytest
import redis.exceptions
from kombu.transport import redis as kombu_redis

from workers import kombu_fixes


@pytest.fixture
def patched(monkeypatch):
    """Apply the patches, and put kombu's originals back afterwards."""
    monkeypatch.setattr(kombu_redis.Channel, "_connparams", kombu_redis.Channel._connparams)
    monkeypatch.setattr(kombu_redis.QoS, "restore_unacked", kombu_redis.QoS.restore_unacked)
    kombu_fixes.apply()
    return kombu_redis


def test_the_installed_kombu_has_the_surface_the_patches_expect():
    assert kombu.__version__ == kombu_fixes.CHECKED_KOMBU  # a new kombu: re-check kombu#582, #659, #970
    assert tuple(inspect.signature(kombu_redis.Channel._connparams).parameters) == ("self", "asynchronous")
    assert tuple(inspect.signature(kombu_redis.QoS.restore_unacked).parameters) == ("self", "client")
    # What the patched restore_unacked relies on: the delivered-tags dict and the channel's error classes.
    qos = kombu_redis.QoS(SimpleNamespace())
    qos._on_collect.cancel()
    assert isinstance(qos._delivered, OrderedDict)
    assert redis.exceptions.ConnectionError in kombu_redis.Transport.connection_errors
    kombu_fixes.check_surface()  # does not raise


def test_a_changed_kombu_fails_loudly_naming_the_upstream_issue():
    class Channel:
        def _connparams(self, asynchronous=False, pool=None):
            return {}

    class QoS:
        def restore_unacked(self, client=None):
            return None

    with pytest.raises(RuntimeError, match=r"Channel\._connparams.*kombu#582"):
        kombu_fixes.check_surface(SimpleNamespace(Channel=Channel, QoS=QoS))
    with pytest.raises(RuntimeError, match=r"QoS\.restore_unacked is gone.*kombu#970"):
        kombu_fixes.check_surface(SimpleNamespace(Channel=kombu_redis.Channel, QoS=object))


def test_the_worker_refuses_to_start_when_the_surface_changed(monkeypatch):
    monkeypatch.setattr(kombu_redis, "QoS", object)
    with pytest.raises(SystemExit, match="kombu#970"):
        kombu_fixes.apply_at_worker_start()


def test_importing_patches_nothing_and_applying_twice_wraps_once(patched):
    first = patched.Channel._connparams
    kombu_fixes.apply()
    assert patched.Channel._connparams is first
    assert inspect.unwrap(first) is not first  # wrapped kombu's own method


def test_a_detached_channel_raises_redis_connection_error(patched):
    with pytest.raises(redis.exceptions.ConnectionError, match="closed"):
        patched.Channel._connparams(SimpleNamespace(connection=None))
    with pytest.raises(redis.exceptions.ConnectionError):
        patched.Channel._connparams(SimpleNamespace(connection=SimpleNamespace(client=None)))


def test_an_attached_channel_gets_kombus_own_parameters(patched):
    connection = kombu.Connection("redis://example.invalid:6390/3")  # builds a transport, connects nothing
    channel = patched.Channel.__new__(patched.Channel)  # a channel without its connecting __init__
    channel.connection = connection.transport
    params = patched.Channel._connparams(channel)
    assert (params["host"], params["port"], params["db"]) == ("example.invalid", 6390, 3)
    channel.connection = None  # what closing the consumer's connection leaves behind
    with pytest.raises(redis.exceptions.ConnectionError):
        patched.Channel._connparams(channel)
    connection.release()


def test_a_requeue_that_cannot_reach_redis_is_logged_and_skipped(patched, caplog):
    @contextmanager
    def unreachable(client=None):
        raise redis.exceptions.ConnectionError("Connection refused")
        yield

    channel = SimpleNamespace(conn_or_acquire=unreachable, connection_errors=(redis.exceptions.ConnectionError,))
    qos = patched.QoS(channel)
    qos._on_collect.cancel()
    qos._delivered["tag-1"] = object()
    qos._delivered["tag-2"] = object()
    with caplog.at_level(logging.WARNING, logger="cachewarm.worker"):
        assert qos.restore_unacked() is None
    assert not qos._delivered
    assert "could not requeue 2 unacknowledged message(s)" in caplog.text
    assert "visibility timeout" in caplog.text


def test_other_errors_of_a_requeue_still_propagate(patched):
    @contextmanager
    def broken(client=None):
        raise ValueError("not a connection problem")
        yield

    qos = patched.QoS(SimpleNamespace(conn_or_acquire=broken, connection_errors=(redis.exceptions.ConnectionError,)))
    qos._on_collect.cancel()
    qos._delivered["tag"] = object()
    with pytest.raises(ValueError):
        qos.restore_unacked()

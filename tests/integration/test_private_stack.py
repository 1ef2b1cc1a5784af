"""devstack.private: the private stack the tests and the benchmarks run on."""

from __future__ import annotations

import os

import pytest
import redis

from cachewarm import reset
from cachewarm.settings import get_settings
from devstack.private import use_environ

pytestmark = pytest.mark.integration


def test_environ_is_scrubbed_and_points_at_the_private_servers_only(private):
    shell = {"PATH": "/usr/bin", "TABLE_NAME": "Production", "CACHE_REDIS_URL": "redis://prod:6379/0",
             "AWS_PROFILE": "prod", "REDIS_HOSTNAME": "prod"}
    env = private.environ(table_name="T1", key_prefix="p1", db=3, base=shell)
    assert env["PATH"] == "/usr/bin"  # what the settings do not read is kept
    assert not {"CACHE_REDIS_URL", "AWS_PROFILE", "REDIS_HOSTNAME"} & set(env)
    assert (env["TABLE_NAME"], env["CACHE_KEY_PREFIX"]) == ("T1", "p1")
    assert env["REDIS_URL"].endswith("/3") and ":6379/" not in env["REDIS_URL"]
    assert redis.Redis.from_url(env["REDIS_URL"]).ping()
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == private.dynalite.url
    with pytest.raises(ValueError):
        private.environ(table_name="T1", key_prefix="p1", db=16)


def test_use_environ_points_the_process_at_the_stack_and_back(private, monkeypatch, request):
    request.addfinalizer(reset)  # after monkeypatch's undo: forget the settings read from "Outside"
    monkeypatch.setenv("TABLE_NAME", "Outside")
    reset()
    assert get_settings().table_name == "Outside"
    env = private.environ(table_name="Inside", key_prefix="p2")
    with use_environ(env):
        assert dict(os.environ) == env
        assert get_settings().table_name == "Inside"  # the cached settings were reset on the way in
    assert os.environ["TABLE_NAME"] == "Outside"
    assert get_settings().table_name == "Outside"  # ...and on the way out

"""The queue-depth Lambda's code (stdlib RESP client), against a real redis-server when there is one."""

from __future__ import annotations

import importlib.util
import io
import shutil
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "infra" / "cachewarm_infra" / "queue_depth" / "index.py"


@pytest.fixture(scope="module")
def fn():
    spec = importlib.util.spec_from_file_location("cachewarm_queue_depth_fn", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_encode_command(fn):
    assert fn.encode_command("LLEN", "warm") == b"*2\r\n$4\r\nLLEN\r\n$4\r\nwarm\r\n"


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"+OK\r\n", "OK"),
        (b":42\r\n", 42),
        (b"$3\r\nabc\r\n", b"abc"),
        (b"$-1\r\n", None),
        (b"*2\r\n:1\r\n$1\r\nx\r\n", [1, b"x"]),
    ],
)
def test_read_reply(fn, wire, value):
    assert fn.read_reply(io.BytesIO(wire)) == value


def test_read_reply_raises_redis_errors(fn):
    with pytest.raises(RuntimeError, match="WRONGPASS"):
        fn.read_reply(io.BytesIO(b"-WRONGPASS invalid username-password pair\r\n"))
    with pytest.raises(ConnectionError):
        fn.read_reply(io.BytesIO(b""))


def test_queue_keys_cover_kombu_priorities(fn):
    assert fn.queue_keys("warm") == ["warm", "warm\x06\x163", "warm\x06\x166", "warm\x06\x169"]


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_queue_depths_against_redis_with_auth(fn, tmp_path):
    redis = pytest.importorskip("redis")
    from devstack.localstack import start_redis

    server = start_redis(tmp_path, extra_args=["--requirepass", "t0ken"])
    try:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        client = redis.Redis(port=port, password="t0ken")
        client.rpush("warm", "a", "b")
        client.rpush("warm\x06\x166", "c")
        client.rpush("load", "d")
        depths = fn.queue_depths("127.0.0.1", port, ["warm", "load", "bench"], tls=False, token="t0ken")
        assert depths == {"warm": 3, "load": 1, "bench": 0}
        with pytest.raises(RuntimeError):
            fn.queue_depths("127.0.0.1", port, ["warm"], tls=False, token="wrong")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("secret", "expected"),
    [('{"username": "metrics", "password": "pw"}', ("metrics", "pw")), ("t0ken", (None, "t0ken"))],
)
def test_credentials_from_the_secret(fn, secret, expected):
    assert fn.credentials(secret) == expected


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_queue_depths_as_the_metrics_acl_user(fn, tmp_path):
    """AUTH username password, as the stack's metrics user (cachewarm_infra.acl): LLEN works, nothing else."""
    redis = pytest.importorskip("redis")
    from cachewarm_infra import acl
    from devstack.localstack import start_redis

    server = start_redis(tmp_path)
    try:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        admin = redis.Redis(port=port)
        admin.rpush("warm", "a", "b")
        admin.rpush("bench\x06\x169", "c")
        admin.execute_command("ACL", "SETUSER", acl.METRICS_USER, *acl.METRICS_ACCESS.split(), ">m3trics")
        depths = fn.queue_depths("127.0.0.1", port, ["warm", "bench"], tls=False, token="m3trics",
                                 username=acl.METRICS_USER)
        assert depths == {"warm": 2, "bench": 1}
        with pytest.raises(RuntimeError, match="WRONGPASS"):
            fn.queue_depths("127.0.0.1", port, ["warm"], tls=False, token="wrong", username=acl.METRICS_USER)
        metrics = redis.Redis(port=port, username=acl.METRICS_USER, password="m3trics")
        with pytest.raises(redis.exceptions.NoPermissionError):
            metrics.lrange("warm", 0, -1)
    finally:
        server.stop()

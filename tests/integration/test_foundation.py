"""Issue 2 acceptance against a real redis-server and dynalite (and the installed CLI)."""

from __future__ import annotations

import json
import socket
import time
from collections import defaultdict

import pytest

from cachewarm import service
from cachewarm.clients import cache_redis
from cachewarm.keys import KeySchema
from devstack.localstack import free_port
from tests.support.items import put_items, restaurant, review, seed_items_path

pytestmark = pytest.mark.integration

SEED = seed_items_path()


def test_table_create_is_idempotent_and_delete_works(cli, stack_env):
    first = cli("table", "create", env=stack_env)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout and "ACTIVE" in first.stdout
    again = cli("table", "create", env=stack_env)
    assert again.returncode == 0 and "already exists" in again.stdout
    gone = cli("table", "delete", env=stack_env)
    assert gone.returncode == 0 and "deleted" in gone.stdout


@pytest.mark.skipif(not SEED.exists(), reason=f"seed file not present at {SEED}")
@pytest.mark.topology_matrix
def test_seed_file_loads_and_every_summary_has_the_five_newest(cli, stack_env, table):
    loaded = cli("load", str(SEED), env=stack_env)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    reviews = defaultdict(list)
    names = []
    for line in SEED.read_text().splitlines():
        item = json.loads(line)
        if item["PK"] == item["SK"]:
            names.append(item["name"])
        else:
            reviews[item["restaurant"]].append(item)
    assert len(names) == 10
    for name in names:
        expected = sorted(reviews[name], key=lambda r: (r["created_at"], r["id"]), reverse=True)[:5]
        first = cli("get", name, "--json", env=stack_env)
        assert first.returncode == 0, first.stderr
        body = json.loads(first.stdout)
        assert body["source"] == "db"
        assert body["restaurant"]["name"] == name
        assert [r["id"] for r in body["reviews"]] == [r["id"] for r in expected]
        assert {"id", "username", "rating", "created_at"} <= set(body["reviews"][0])
        second = json.loads(cli("get", name, "--json", env=stack_env).stdout)
        assert second["source"] == "cache"
        assert second["reviews"] == body["reviews"]
        assert isinstance(second["latency_ms"], float)


# DynamoDB caps a sort key at 1024 bytes, so "REST#" + 1019 bytes is the longest storable
# name; the key schema itself is tested with longer ones in tests/unit/test_keys.py.
HOSTILE = ["Star*", "Star", "Starbucks", "St?r", "[Star]", "tab\tname", "Café 東京 🍣", "x" * 1019,
           "a:b", "Sta"]


@pytest.mark.engine_matrix
@pytest.mark.topology_matrix
def test_hostile_names_round_trip_and_never_collide(stack_env, table, live_settings):
    put_items(table, [restaurant(n) for n in HOSTILE] + [review(n, f"{i:040x}") for i, n in enumerate(HOSTILE)])
    engine = service.engine(live_settings)
    for name in HOSTILE:
        first = engine.fetch(name)
        assert first.source == "db" and first.summary.name == name
        assert first.summary.reviews[0]["restaurant"] == name
    for name in HOSTILE:
        second = engine.fetch(name)
        assert second.source == "cache" and second.summary.name == name
    keys = KeySchema(prefix=live_settings.key_prefix)
    client = cache_redis(live_settings)
    stored = {k.decode() for k in client.scan_iter(match=keys.summary_pattern(), count=1000)}
    assert stored == {keys.summary(n) for n in HOSTILE}
    assert all(client.pttl(k) > 0 for k in stored)


@pytest.mark.engine_matrix
@pytest.mark.topology_matrix
def test_unknown_restaurant_is_not_found_and_cached_negatively(cli, stack_env, table):
    first = cli("get", "Nowhere", "--json", env=stack_env)
    assert first.returncode == 1
    assert json.loads(first.stdout)["found"] is False
    assert "not found" in first.stderr
    second = cli("get", "Nowhere", "--json", env=stack_env)
    assert json.loads(second.stdout)["source"] == "cache"


def test_get_answers_from_dynamodb_when_the_cache_is_down(cli, stack_env, table):
    put_items(table, [restaurant("Thai Spot"), review("Thai Spot", "ab" * 20)])
    # A bound socket that never listens refuses connections, and nobody else can take its port.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
    # 10.255.255.1 is unroutable here: connects hang until our timeout.
    for down_url in (refused, "redis://10.255.255.1:6379/0"):
        env = {**stack_env, "REDIS_URL": down_url}
        start = time.monotonic()
        result = cli("get", "Thai Spot", "--json", env=env)
        elapsed = time.monotonic() - start
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert (body["source"], body["cache"]) == ("db", "unavailable")
        assert len(body["reviews"]) == 1
        # Not a performance goal: a read that waited on the dead cache (an OS connect timeout is
        # minutes) would blow far past this; the CLI's own start-up is 1-2 s on a busy 2-core box.
        assert elapsed < 6.0, f"{down_url}: {elapsed:.2f}s"


def test_cache_that_refuses_us_falls_back(cli, stack_env, table, tmp_path):
    from devstack.localstack import start_redis

    put_items(table, [restaurant("Thai Spot")])
    locked = start_redis(tmp_path / "locked", extra_args=["--requirepass", "right-password"])
    try:
        url = locked.url.replace("redis://", "redis://:wrong-password@")
        result = cli("get", "Thai Spot", "--json", env={**stack_env, "REDIS_URL": url})
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["cache"] == "unavailable"
        assert "wrong-password" not in result.stdout + result.stderr
    finally:
        locked.stop()


@pytest.mark.parametrize("var,value", [("REDIS_URL", "foo://x"), ("CACHE_TTL_SECONDS", "soon"),
                                       ("AWS_ENDPOINT_URL_DYNAMODB", "nohttp")])
def test_bad_setting_is_one_line_and_exit_2(cli, stack_env, var, value):
    result = cli("get", "X", env={**stack_env, var: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and var in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_table_is_a_clear_error(cli, stack_env):
    result = cli("get", "X", env={**stack_env, "TABLE_NAME": "NoSuchTable"})
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "table create" in result.stderr
    assert "Traceback" not in result.stderr


def test_dynamodb_unreachable_is_a_clear_error(cli, stack_env):
    env = {**stack_env, "AWS_ENDPOINT_URL_DYNAMODB": f"http://127.0.0.1:{free_port()}",
           "DYNAMODB_MAX_ATTEMPTS": "1", "DYNAMODB_TIMEOUT_SECONDS": "1"}
    result = cli("get", "X", env=env)
    assert result.returncode == 1
    assert "cannot reach DynamoDB" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cached_get_imports_no_aws_sdk_and_builds_no_dynamodb_client(cli, stack_env, table):
    """The one-shot CLI's hit path: no boto3 import, no DynamoDB client (most of its wall time before)."""
    import subprocess
    import sys

    put_items(table, [restaurant("Fast"), review("Fast", "f" * 40)])
    assert json.loads(cli("get", "Fast", "--json", env=stack_env).stdout)["source"] == "db"
    probe = ("import sys\nfrom cachewarm_cli import main\nsys.argv = ['cachewarm', 'get', 'Fast', '--json']\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('SDK', 'boto3' in sys.modules, 'botocore' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], env=stack_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    body, sdk = done.stdout.rsplit("\n", 2)[-3], done.stdout.rsplit("\n", 2)[-2]
    assert json.loads(body)["source"] == "cache" and "setup_ms" not in json.loads(body)
    assert sdk == "SDK False False"
    # A miss in the same kind of process builds the client once and reports it apart from the read's latency.
    missed = json.loads(cli("get", "Nowhere Yet", "--json", env=stack_env).stdout)
    assert missed["source"] == "db" and missed["setup_ms"] > 0

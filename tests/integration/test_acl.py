"""The production ACL users (``infra/cachewarm_infra/acl.py``) on real servers: Valkey 8.1 and redis-server 7.0.

The stack creates ElastiCache RBAC users from the access strings in ``cachewarm_infra.acl``; here the same
strings are applied with ``ACL SETUSER`` (each user created fresh, as ElastiCache does, then ``default``
switched off, by an admin user made for the test), and then:

* the **cache** user cannot touch the broker's keys (queues, kombu's bindings, redbeat's lock, task
  results) nor run dangerous commands, and the cache engine works through it: fill and hit, invalidate,
  warm (``store_many``), the change feed's batch, ``invalidate_all`` (SCAN + UNLINK), the audit, ``stats``;
* the **broker** user runs a real Celery worker, beat and Flower (with the cache user for
  ``CACHE_REDIS_URL``): a task sent by a client completes, beat takes redbeat's lock and dispatches, Flower's
  ``/api/workers`` lists the worker;
* an unauthenticated client (the disabled ``default`` user) can do nothing.

Each test ends by reading ``ACL LOG``: the only refusal the app's own paths may cause is ``CONFIG GET``
(the eviction-policy check, which tolerates it; ElastiCache refuses CONFIG to everyone anyway).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

import tests.support.infra  # noqa: F401 - puts infra/ on sys.path for cachewarm_infra
from cachewarm.settings import Settings
from cachewarm_infra import acl
from devstack.localstack import Service, start_redis
from tests.support.celery_procs import celery_app_for
from tests.support.items import put_items, restaurant, review

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = acl.DEFAULT_KEY_PREFIX
#: Keys Celery, kombu and redbeat keep (the cache user must not reach any of them). redbeat's live under the
#: cache's prefix (``<prefix>:redbeat``, workers/config.py), outside the cache's namespace ``<prefix>:v2:``.
BROKER_KEYS = ("celery", "warm", "_kombu.binding.celery", "unacked", "unacked_index", f"{PREFIX}:redbeat:lock",
               f"{PREFIX}:redbeat:schedule", f"{PREFIX}:redbeat:statics", f"{PREFIX}:redbeatwarm-hot",
               "celery-task-meta-0a0a0a0a")
#: Refusals the app's paths cause and tolerate (cachewarm.eviction.read_policy).
TOLERATED = {"config|get"}


@dataclass
class AclServer:
    engine: str
    service: Service
    port: int
    passwords: dict[str, str]
    admin: redis.Redis

    def url(self, user: str, db: int = 0) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/{db}"

    def client(self, user: str) -> redis.Redis:
        return redis.Redis.from_url(self.url(user))

    def allowed(self, user: str, *command: object) -> bool:
        """Would ``user`` be allowed ``command``? (``ACL DRYRUN``: nothing runs, so SHUTDOWN is safe to ask.)"""
        return self.admin.execute_command("ACL", "DRYRUN", user, *command) == "OK"

    def refusals(self) -> list[tuple[str, str, str]]:
        """(user, reason, object) of each ACL LOG entry since the last reset."""
        return [(e["username"], e["reason"], e["object"]) for e in self.admin.acl_log()]


@pytest.fixture(scope="module", params=["valkey", "redis"])
def server(request, tmp_path_factory) -> Iterator[AclServer]:
    """A private server with the deployment's users; ``default`` off. The admin user exists only here."""
    engine = request.param
    service = start_redis(tmp_path_factory.mktemp(f"acl-{engine}"), engine=engine)
    port = int(service.url.rsplit(":", 1)[1].split("/")[0])
    try:
        admin_password = secrets.token_hex(16)
        bootstrap = redis.Redis(port=port)
        bootstrap.execute_command("ACL", "SETUSER", "admin", "reset", "on", f">{admin_password}", "~*", "&*", "+@all")
        admin = redis.Redis(port=port, username="admin", password=admin_password, decode_responses=True)
        passwords = {}
        # default last: once it is off, only the admin can change anything.
        for user in sorted(acl.users(PREFIX, engine), key=lambda u: u.name == acl.DEFAULT_USER):
            passwords[user.name] = secrets.token_hex(16)
            password = f">{passwords[user.name]}"
            admin.execute_command("ACL", "SETUSER", user.name, "reset", *user.access.split(), password)
        assert admin.acl_getuser(acl.DEFAULT_USER)["flags"][0] == "off"
        yield AclServer(engine, service, port, passwords, admin)
    finally:
        service.stop()


@pytest.fixture
def fresh(server) -> AclServer:
    server.admin.flushall()
    server.admin.acl_log_reset()
    return server


# --- what the cache user and an anonymous client cannot do ---------------------------------------------


def test_anonymous_clients_can_do_nothing(fresh):
    anonymous = redis.Redis(port=fresh.port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=fresh.port, username=acl.DEFAULT_USER, password=fresh.passwords[acl.DEFAULT_USER]).ping()


def test_the_cache_user_cannot_reach_the_brokers_keys_or_run_dangerous_commands(fresh):
    admin = fresh.admin
    admin.rpush("celery", "task")
    admin.sadd("_kombu.binding.celery", "celery\x06\x16\x06\x16celery")
    admin.set(f"{PREFIX}:redbeat:lock", "beat")
    admin.set("celery-task-meta-0a0a0a0a", "{}")
    cache = fresh.client(acl.CACHE_USER)
    for key in BROKER_KEYS:
        for command in (("GET", key), ("SET", key, "x"), ("DEL", key), ("UNLINK", key), ("EXPIRE", key, 1),
                        ("LPUSH", key, "x"), ("EXISTS", key)):
            with pytest.raises(redis.exceptions.NoPermissionError):
                cache.execute_command(*command)
        # Scripts are checked too: a script's keys must match the pattern.
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.evalsha("0" * 40, 1, key)
    for command in (("FLUSHALL",), ("FLUSHDB",), ("KEYS", "*"), ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"),
                    ("CONFIG", "GET", "*"), ("DEBUG", "SLEEP", "0"), ("SHUTDOWN", "NOSAVE"), ("ACL", "LIST"),
                    ("EVAL", "return 1", 0), ("PUBLISH", "celery", "x"), ("SUBSCRIBE", "celery"),
                    ("BRPOP", "celery", 1), ("MONITOR",), ("CLIENT", "KILL", "ID", "1"), ("SWAPDB", 0, 1),
                    ("RENAME", f"{PREFIX}:v2:a", "celery"), ("COPY", f"{PREFIX}:v2:a", "celery"),
                    ("MIGRATE", "h", 1, "", 0, 1)):
        assert not fresh.allowed(acl.CACHE_USER, *command), command
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.flushall()
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.keys("*")
    # Everything is still there, untouched.
    assert admin.lrange("celery", 0, -1) == ["task"] and admin.get(f"{PREFIX}:redbeat:lock") == "beat"
    assert admin.dbsize() == 4
    # The cache's own keys are fine; SCAN lists names only, and the core always matches its namespace.
    assert cache.set(f"{PREFIX}:v2:{{x}}:sum", "1", ex=60) and cache.get(f"{PREFIX}:v2:{{x}}:sum") == b"1"
    assert cache.set(f"{PREFIX}-bench:v2:{{x}}:sum", "1", ex=60)
    with pytest.raises(redis.exceptions.NoPermissionError):
        cache.set(f"{PREFIX}:other", "1")
    # The broker user may not run dangerous commands either.
    for command in (("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"), ("ACL", "LIST"),
                    ("DEBUG", "SLEEP", "0"), ("SHUTDOWN", "NOSAVE"), ("MONITOR",)):
        assert not fresh.allowed(acl.BROKER_USER, *command), command
    assert fresh.allowed(acl.BROKER_USER, "INFO") and fresh.allowed(acl.BROKER_USER, "PUBLISH", "celery", "x")
    # The metrics user sees list lengths, nothing else.
    metrics = fresh.client(acl.METRICS_USER)
    assert metrics.llen("celery") == 1
    with pytest.raises(redis.exceptions.NoPermissionError):
        metrics.lrange("celery", 0, -1)


# --- the cache engine as the cache user ---------------------------------------------------------------


class StandIn:
    """A repository stand-in: every name exists, at the version it is given."""

    def __init__(self) -> None:
        self.version = 1
        self.reads = 0

    def get_summary(self, name):
        from cachewarm.model import Summary

        self.reads += 1
        return Summary({"name": name, "version": self.version}, [])


def test_the_cache_engine_works_as_the_cache_user(fresh):
    from cachewarm import audit, change_capture, invalidation, stats
    from cachewarm.cache import NO_VALUE, CacheAside
    from cachewarm.clients import redis_client
    from cachewarm.keys import KeySchema
    from cachewarm.model import Summary

    client = redis_client(fresh.url(acl.CACHE_USER), timeout=2.0)  # the app's own client factory
    repo = StandIn()
    engine = CacheAside(client, repo, Settings(key_prefix=PREFIX, local_max_items=100))  # the near cache too
    first, second = engine.fetch("Thai Spot"), engine.fetch("Thai Spot")
    assert (first.source, second.source) == ("db", "cache"), (first, second)
    assert second.cache == "hit" and repo.reads == 1
    deadline = time.monotonic() + 10
    while not engine.near.live and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.near.live and engine.near.mode == "tracking"  # CLIENT TRACKING is granted: pushes, not a TTL
    assert engine.invalidate("Thai Spot", min_version=2)
    assert engine.peek("Thai Spot") is NO_VALUE
    assert engine.store_many([(f"Warm {i}", Summary({"name": f"Warm {i}", "version": 3}, []), 0.01)
                              for i in range(5)] + [("Gone", None, 0.01)]) == 6
    assert engine.fetch("Warm 0").cache == "hit"
    record = {"eventName": "MODIFY", "dynamodb": {"Keys": {"PK": {"S": "REST#Warm 1"}, "SK": {"S": "REST#Warm 1"}},
                                                   "SequenceNumber": "1", "ApproximateCreationDateTime": time.time()}}
    outcome = change_capture.handle_records([record], engine, hold_off_ms=50)
    assert (outcome.names, outcome.failed, outcome.error) == (["Warm 1"], [], None)
    engine.flush()
    repo.version = 3
    report = audit.run_audit(engine, repo, sample=10)
    assert report.checked >= 4 and report.scan_calls >= 1
    assert invalidation.invalidate_all(engine) >= 4
    assert engine.peek("Warm 0") is NO_VALUE
    keys = KeySchema(prefix=PREFIX)
    stats.TaskRuns(client, keys).record("cachewarm.warm_names", task_id="t1", state="SUCCESS", runtime=0.1)
    engine.fetch("Warm 2")
    engine.flush()
    report = stats.collect(client, keys, task_names=["cachewarm.warm_names"])
    assert report["errors"] == {}, report["errors"]
    assert report["memory"]["used_memory"] > 0  # INFO is granted
    assert [t["state"] for t in report["tasks"]] == ["SUCCESS"]
    assert {user for user, _, _ in fresh.refusals()} <= {acl.CACHE_USER}
    assert {obj for _, _, obj in fresh.refusals()} <= TOLERATED, fresh.refusals()
    # Nothing outside the cache's namespace was written.
    assert all(key.startswith(f"{PREFIX}:v2:") for key in fresh.admin.scan_iter(count=1000))


# --- Celery, redbeat and Flower as the broker user ------------------------------------------------------


@pytest.fixture
def acl_env(fresh, private) -> Iterator[dict[str, str]]:
    """The session's dynalite, this module's server: the broker user for REDIS_URL, the cache user for the cache."""
    from cachewarm import service

    env = private.environ(table_name=f"Restaurants-{uuid.uuid4().hex[:10]}", key_prefix=PREFIX)
    env.update(REDIS_URL=fresh.url(acl.BROKER_USER), CACHE_REDIS_URL=fresh.url(acl.CACHE_USER),
               WARM_HOT_SCHEDULE="2", INVALIDATE_STALE_SCHEDULE="off", BENCHMARK_SCHEDULE="off")
    repo = service.repository(Settings.from_env(env))
    repo.create_table()
    put_items(repo, [restaurant("Thai Spot"), review("Thai Spot", "r1", "2024-01-01T00:00:00")])
    yield env
    repo.delete_table(wait=False)


def test_celery_worker_beat_and_flower_run_as_the_broker_user(fresh, acl_env, celery_proc):
    from tests.integration.test_flower import listed_node, start_flower

    worker = celery_proc(["worker", "--loglevel=INFO", "--concurrency=2", "--without-mingle", "--without-gossip",
                          f"--hostname=acl-{uuid.uuid4().hex[:6]}@%h"], acl_env)
    worker.wait_for("ready.")
    client = celery_app_for(acl_env)
    try:
        result = client.send_task("cachewarm.warm_names", args=[["Thai Spot"]])
        assert result.get(timeout=60)["warmed"] == ["Thai Spot"]
    finally:
        client.close()
    assert fresh.admin.exists(f"{PREFIX}:v2:{{Thai%20Spot}}:sum")

    beat = celery_proc(["beat", "--loglevel=INFO"], acl_env, name="beat")
    beat.wait_for("Acquired lock", timeout=60)
    beat.wait_for("Sending due task warm-hot", timeout=60)
    worker.wait_for("warm_hot:", timeout=60)  # dispatched by beat, run by the worker
    redbeat = {key for key in fresh.admin.scan_iter(match=f"{PREFIX}:redbeat*")}
    assert any(key.endswith(":lock") for key in redbeat), redbeat
    refused = fresh.refusals()  # the worker's, the client's and beat's so far
    assert {obj for _, _, obj in refused} <= TOLERATED, refused
    cache = fresh.client(acl.CACHE_USER)
    for key in redbeat:  # beat's lock and schedule are out of the cache user's reach
        with pytest.raises(redis.exceptions.NoPermissionError):
            cache.delete(key)
    fresh.admin.acl_log_reset()  # those refusals were this test's; from here on, only the processes'

    # The daily benchmark runs through the cache user too, in its own namespace (<prefix>-bench).
    client = celery_app_for(acl_env)
    try:
        run = client.send_task("cachewarm.run_benchmark", kwargs={"sample": 1}).get(timeout=90)
    finally:
        client.close()
    assert run["sample"] == 1 and run["hit_ms"]["p50"] > 0, run

    flower = start_flower(celery_proc, acl_env)
    assert listed_node(flower, worker).startswith("acl-")
    status, _ = flower.get("/api/workers")
    assert status == 401  # basic auth still applies

    refused = fresh.refusals()
    assert {obj for _, _, obj in refused} <= TOLERATED, refused
    assert "NOPERM" not in worker.log() + beat.log() + flower.proc.log()

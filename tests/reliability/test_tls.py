"""Issue 7, fault 10: Redis with TLS and a password, as ElastiCache with in-transit encryption and AUTH.

A local redis-server listens only on a TLS port, with a certificate from a CA
made for this test and ``requirepass``. The project works over ``rediss://``
(broker, cache, beat); a server whose certificate it cannot verify is never
used; a wrong password is a clear error; and no secret ever reaches a log or
the CLI's output.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from devstack.localstack import free_port
from tests.support.celery_procs import start_worker
from tests.support.items import restaurant, review
from tests.support.redis_proc import RedisProc
from tests.support.tables import batch_put
from tests.support.tls import make_ca_and_server_cert
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMES = ["Tls Alpha", "Tls Bravo"]


@pytest.fixture
def tls_redis(tmp_path):
    """A redis-server on a TLS port only, with requirepass; yields (server, password, files, other CA)."""
    files = make_ca_and_server_cert(tmp_path / "tls")
    other = make_ca_and_server_cert(tmp_path / "tls", "other")
    password = "pw-" + secrets.token_hex(12)
    port = free_port()
    server = RedisProc(tmp_path / "redis-tls", [
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(files.cert), "--tls-key-file",
        str(files.key), "--tls-ca-cert-file", str(files.ca), "--tls-auth-clients", "no",
        "--requirepass", password,
    ], port=port).start()
    yield server, password, files, other.ca
    server.stop()


def url(server: RedisProc, password: str, query: str = "") -> str:
    return f"rediss://:{password}@127.0.0.1:{server.port}/0{query}"


def admin(server: RedisProc, password: str, ca: Path):
    import redis

    return redis.Redis.from_url(url(server, password, f"?ssl_cert_reqs=required&ssl_ca_certs={ca}"))


def without_tls_env(env: dict[str, str]) -> dict[str, str]:
    """The environment without a trust store override (the system's CAs only)."""
    return {k: v for k, v in env.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}


def assert_no_secret(password: str, *texts: str) -> None:
    for text in texts:
        assert password not in text, "a secret leaked into output or logs"


def test_project_works_over_tls_with_a_password(tls_redis, rel_env, table, ledger, celery_proc, cli, record):
    server, password, files, _ = tls_redis
    good = url(server, password, f"?ssl_cert_reqs=required&ssl_ca_certs={files.ca}")
    env = {**without_tls_env(rel_env), "REDIS_URL": good, "WARM_HOT_SCHEDULE": "2",
           "INVALIDATE_STALE_SCHEDULE": "off", "BENCHMARK_SCHEDULE": "off"}
    batch_put(table, [restaurant(n) for n in NAMES] + [review(NAMES[0], "t" * 40)])
    worker = start_worker(celery_proc, env)
    beat = celery_proc(["beat", "--loglevel=INFO"], env, name="beat")

    outputs = []
    first = cli("get", NAMES[0], "--json", env=env)
    second = cli("get", NAMES[0], "--json", env=env)
    outputs += [first, second]
    assert first.returncode == 0, first.stderr
    assert (json.loads(first.stdout)["source"], json.loads(second.stdout)["source"]) == ("db", "cache")
    warmed = cli("warm", *NAMES, "--wait", "--json", env=env)
    outputs.append(warmed)
    assert warmed.returncode == 0, warmed.stderr
    assert sorted(json.loads(warmed.stdout)["warmed"]) == sorted(NAMES)
    # ElastiCache's form: a bare rediss:// URL, verified against the system's trust store.
    bare = {**env, "REDIS_URL": url(server, password), "SSL_CERT_FILE": str(files.ca)}
    bare_warm = cli("warm", NAMES[1], "--wait", "--json", env=bare)
    outputs.append(bare_warm)
    assert bare_warm.returncode == 0, bare_warm.stderr
    wait_until(lambda: ledger.successes("cachewarm.warm_hot"), 60, "beat over TLS to dispatch warm_hot")
    stats = cli("stats", "--json", env=env)
    outputs.append(stats)
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["cache"].startswith("rediss://:***@")
    clients = admin(server, password, files.ca).client_list()
    assert {c["name"] for c in clients} >= {"cachewarm"}  # the workers' cache client is connected over TLS
    worker.stop()
    beat.stop()
    assert_no_secret(password, worker.log(), beat.log(), *(o.stdout + o.stderr for o in outputs))
    record(tls=True, requirepass=True, beat_runs=len(ledger.successes("cachewarm.warm_hot")),
           secret_leaks=0)


def test_a_server_that_cannot_be_verified_is_never_used(tls_redis, rel_env, table, celery_proc, cli, record):
    server, password, files, other_ca = tls_redis
    batch_put(table, [restaurant(n) for n in NAMES])
    base = without_tls_env(rel_env)
    cases = {
        "system trust store": url(server, password),
        "another CA": url(server, password, f"?ssl_cert_reqs=required&ssl_ca_certs={other_ca}"),
    }
    probe = admin(server, password, files.ca)
    commands_before = probe.info("stats")["total_commands_processed"]
    workers = {label: start_worker(celery_proc, {**base, "REDIS_URL": u}, name=f"worker-{i}", ready=False)
               for i, (label, u) in enumerate(cases.items())}
    outputs = []
    for label, bad in cases.items():
        env = {**base, "REDIS_URL": bad}
        t0 = time.monotonic()
        read = cli("get", NAMES[0], "--json", env=env)
        read_s = time.monotonic() - t0
        outputs.append(read)
        assert read.returncode == 0, (label, read.stderr)
        body = json.loads(read.stdout)
        assert (body["found"], body["source"], body["cache"]) == (True, "db", "unavailable"), label
        assert "CERTIFICATE_VERIFY_FAILED" in read.stderr  # the fallback says why
        queued = cli("warm", NAMES[0], env=env)
        outputs.append(queued)
        assert queued.returncode == 1, label
        assert "was not queued" in queued.stderr and "CERTIFICATE_VERIFY_FAILED" in queued.stderr, queued.stderr
        assert len(queued.stderr.strip().splitlines()) == 1 and "Traceback" not in queued.stderr
    for label, worker in workers.items():
        wait_until(lambda w=worker: "certificate verify failed" in w.log(), 60, f"{label} worker to report")
    time.sleep(2)
    for label, worker in workers.items():
        assert "ready." not in worker.log(), f"a worker trusted an unverifiable server ({label})"
        assert worker.process.poll() is None  # it keeps trying, it does not crash
    # Nothing reached the server through an unverified connection: only our probe's own INFO ran.
    assert probe.info("stats")["total_commands_processed"] - commands_before <= 2
    # Turning verification off is refused up front (exit 2), never used.
    off = cli("get", NAMES[0], env={**base, "REDIS_URL": url(server, password, "?ssl_cert_reqs=none")})
    assert off.returncode == 2 and "ssl_cert_reqs must be 'required'" in off.stderr
    outputs.append(off)
    for worker in workers.values():
        worker.stop()
    assert_no_secret(password, *(w.log() for w in workers.values()), *(o.stdout + o.stderr for o in outputs))
    record(cases=list(cases), unverified_commands_served=0, fallback_read_s=round(read_s, 2), secret_leaks=0)


def test_wrong_password_is_a_clear_error_and_never_printed(tls_redis, rel_env, table, celery_proc, cli, record):
    server, password, files, _ = tls_redis
    wrong = "wrong-" + secrets.token_hex(8)
    bad = url(server, wrong, f"?ssl_cert_reqs=required&ssl_ca_certs={files.ca}")
    env = {**without_tls_env(rel_env), "REDIS_URL": bad}
    batch_put(table, [restaurant(n) for n in NAMES])
    worker = start_worker(celery_proc, env, ready=False)
    read = cli("get", NAMES[0], "--json", env=env)
    assert read.returncode == 0 and json.loads(read.stdout)["cache"] == "unavailable"
    assert "invalid username-password pair" in read.stderr
    queued = cli("warm", NAMES[0], env=env)
    assert queued.returncode == 1
    assert "AuthenticationError: invalid username-password pair" in queued.stderr, queued.stderr
    stats = cli("stats", env=env)
    assert stats.returncode == 1 and "invalid username-password pair" in stats.stderr
    debug = cli("warm", NAMES[0], env={**env, "CACHEWARM_DEBUG": "1"})  # even a traceback must not show it
    wait_until(lambda: "invalid username-password pair" in worker.log(), 60, "the worker to report the refusal")
    assert "ready." not in worker.log() and worker.process.poll() is None
    worker.stop()
    texts = [worker.log(), *(r.stdout + r.stderr for r in (read, queued, stats, debug))]
    assert_no_secret(wrong, *texts)
    assert_no_secret(password, *texts)
    record(clear_errors=["get: falls back with a warning", queued.stderr.strip()[:150], stats.stderr.strip()[:150]],
           secret_leaks=0)

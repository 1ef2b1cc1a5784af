"""Issue 6: Flower on the project's config, closed to anonymous users, seen through a real Chromium.

The browser test drives Debian's ``/usr/bin/chromium`` headless through
Playwright's Python API (no browser download). ``UPDATE_SCREENSHOTS=1`` copies
its screenshot to ``docs/images/flower.png`` (the README's image).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.localstack import PROJECT_ROOT, free_port, start_redis
from tests.support.cli import BIN
from tests.support.items import seed_restaurants
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = PROJECT_ROOT / "docs" / "images" / "flower.png"


@dataclass
class FlowerProc:
    url: str
    port: int
    user: str
    password: str
    proc: object

    def get(self, path: str, auth: tuple[str, str] | None = None, method: str = "GET") -> tuple[int, bytes]:
        """GET (or ``method``) ``path``; returns (status, body) for any status."""
        headers = {}
        if auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        data = b"" if method == "POST" else None
        request = urllib.request.Request(self.url + path, headers=headers, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def worker_name(worker) -> str:
    """The worker's node name prefix, from its --hostname=test-xxxxxx@%h."""
    arg = next(a for a in worker.argv if a.startswith("--hostname="))
    return arg.split("=", 1)[1].split("@", 1)[0] + "@"


@pytest.fixture
def flower(celery_proc, stack_env) -> FlowerProc:
    """``celery -A workers flower`` (no ``--conf``: the app points Flower at workers/flowerconfig.py) with a login."""
    return start_flower(celery_proc, stack_env)


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


@pytest.mark.engine_matrix
def test_anonymous_requests_get_401_and_the_login_lists_the_worker(worker, flower):
    for path in ("/", "/tasks", "/api/workers", "/api/tasks", "/workers"):
        status, _ = flower.get(path)
        assert status == 401, path
    assert flower.get("/api/workers", auth=(flower.user, "wrong"))[0] == 401
    assert flower.get("/api/workers", auth=("someone", flower.password))[0] == 401

    prefix = worker_name(worker)

    def listed():
        status, body = flower.get("/api/workers?refresh=1", auth=(flower.user, flower.password))
        assert status == 200
        return [name for name in json.loads(body) if name.startswith(prefix)]

    assert wait_until(listed, 60, f"worker {prefix}* in /api/workers", interval=0.5)
    assert flower.get("/", auth=(flower.user, flower.password))[0] == 200
    # Loopback only, unless FLOWER_ADDRESS or --address says otherwise (127.0.0.1 is 0100007F).
    assert listening_addresses(flower.port) == {"0100007F"}
    log = flower.proc.log()
    assert flower.password not in log
    assert "cachewarm.run_benchmark" in log  # registered tasks come from -A workers


def start_flower(celery_proc, env: dict[str, str], **extra: str) -> FlowerProc:
    """``celery -A workers flower`` with a login on a free port, and ``extra`` variables (else Flower's defaults)."""
    user, password = "ops", secrets.token_urlsafe(12)
    port = free_port()
    env = {name: value for name, value in env.items() if name != "FLOWER_READ_ONLY"}  # not from the caller's shell
    proc = celery_proc(["flower"], dict(env, FLOWER_BASIC_AUTH=f"{user}:{password}", FLOWER_PORT=str(port), **extra),
                       name="flower")
    proc.wait_for("Visit me at")
    return FlowerProc(f"http://127.0.0.1:{port}", port, user, password, proc)


def listed_node(flower: FlowerProc, worker) -> str:
    """The worker's full node name once Flower lists it."""
    prefix = worker_name(worker)

    def listed():
        status, body = flower.get("/api/workers?refresh=1", auth=(flower.user, flower.password))
        return status == 200 and next((name for name in json.loads(body) if name.startswith(prefix)), None)

    return wait_until(listed, 60, f"worker {prefix}* in /api/workers", interval=0.5)


def test_flower_is_read_only_unless_the_operator_says_otherwise(worker, flower, celery_proc, stack_env):
    login = (flower.user, flower.password)
    node = listed_node(flower, worker)
    actions = [f"/api/worker/pool/grow/{node}?n=1", f"/api/worker/pool/shrink/{node}?n=1",
               f"/api/worker/shutdown/{node}", "/api/task/revoke/0a0a0a0a?terminate=true",
               "/api/task/async-apply/cachewarm.warm_hot"]
    for path in actions:
        status, body = flower.get(path, auth=login, method="POST")
        assert (status, b"Read only mode is enabled" in body) == (403, True), path
    assert flower.get("/api/workers", auth=login)[0] == 200  # watching is unchanged

    # The operator's choice: FLOWER_READ_ONLY=false gives the actions back.
    writable = start_flower(celery_proc, stack_env, FLOWER_READ_ONLY="false")
    node = listed_node(writable, worker)
    status, body = writable.get(f"/api/worker/pool/grow/{node}?n=1", auth=(writable.user, writable.password),
                                method="POST")
    assert status == 200, body


def test_flower_refuses_to_start_without_a_login(stack_env):
    import subprocess

    env = {k: v for k, v in stack_env.items() if not k.startswith("FLOWER_")}
    env["FLOWER_PORT"] = str(free_port())
    done = subprocess.run([str(BIN / "celery"), "-A", "workers", "flower"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert done.returncode == 2
    assert "FLOWER_BASIC_AUTH is not set" in done.stderr
    assert "Traceback" not in done.stderr

    env["FLOWER_BASIC_AUTH"] = "no-password-here"
    done = subprocess.run([str(BIN / "celery"), "-A", "workers", "flower"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: FLOWER_BASIC_AUTH=") and "no-password-here" not in done.stderr


@pytest.mark.engine_matrix
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (make setup installs it)")
def test_browser_logs_in_and_sees_the_worker_and_a_succeeded_benchmark(worker, flower, table, celery_client,
                                                                       tmp_path):
    from playwright.sync_api import expect, sync_playwright

    seed_restaurants(table, restaurants=12, reviews=3)
    prefix = worker_name(worker)
    shot = tmp_path / "flower.png"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # Without credentials the browser gets Flower's 401 too (navigation would fail on the challenge).
            anonymous = browser.new_context()
            assert anonymous.request.get(flower.url + "/").status == 401
            anonymous.close()

            context = browser.new_context(
                http_credentials={"username": flower.user, "password": flower.password},
                viewport={"width": 1920, "height": 600},
            )
            page = context.new_page()
            assert page.goto(flower.url + "/").status == 200
            # Online comes from the worker's heartbeat events: once it shows, Flower sees events.
            row = page.locator("#workers-table tbody tr", has_text=prefix)
            expect(row).to_have_count(1, timeout=60_000)
            expect(row).to_contain_text("Online", timeout=60_000)

            warm = celery_client.send_task("cachewarm.warm_names", args=[["Bench 000", "Bench 001", "Bench 002"]])
            bench = celery_client.send_task("cachewarm.run_benchmark", kwargs={"sample": 5})
            assert warm.get(timeout=120)["requested"] == 3
            assert bench.get(timeout=180)["sample"] == 5

            page.goto(flower.url + "/tasks")
            bench_row = page.locator("table tbody tr", has_text="cachewarm.run_benchmark")
            expect(bench_row.first).to_contain_text("SUCCESS", timeout=60_000)
            expect(bench_row.first).to_contain_text("'sample': 5")  # readable keyword arguments
            expect(page.locator("table tbody tr", has_text="cachewarm.warm_names").first).to_contain_text(
                "Bench 000")  # readable arguments
            page.screenshot(path=str(shot), full_page=True)

            page.goto(f"{flower.url}/task/{bench.id}")
            expect(page.locator("body")).to_contain_text("'sample': 5")
        finally:
            browser.close()

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_stack_up_generates_a_flower_password_prints_it_once_and_masks_redis(cli, stack_env, dynalite, tmp_path):
    secret = "s3cret-" + secrets.token_hex(4)
    redis = start_redis(tmp_path / "redis-auth", extra_args=["--requirepass", secret])
    try:
        procfile = tmp_path / "Procfile"
        # Stands in for Flower: proves the login reached the process without printing it.
        probe = ("import hashlib, os; "
                 "print('login-sha256', hashlib.sha256(os.environ['FLOWER_BASIC_AUTH'].encode()).hexdigest())")
        procfile.write_text(f'flower: {sys.executable} -c "{probe}"\n')
        env = dict(stack_env, REDIS_URL=redis.url.replace("redis://", f"redis://:{secret}@"))
        done = cli("stack", "up", "--procfile", str(procfile), "--no-create-table", env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        out = done.stdout + done.stderr
        assert secret not in out
        assert "redis://:***@127.0.0.1" in out
        line = next(x for x in done.stdout.splitlines() if x.startswith("flower http://127.0.0.1:5555/"))
        password = line.split(" password ", 1)[1].split()[0]
        assert len(password) >= 20
        assert out.count(password) == 1
        digest = hashlib.sha256(f"admin:{password}".encode()).hexdigest()
        assert f"login-sha256 {digest}" in done.stdout

        # A login the operator chose is used as it is, and its password never printed.
        env["FLOWER_BASIC_AUTH"] = "ops:chosen-" + secret
        done = cli("stack", "up", "--procfile", str(procfile), "--no-create-table", env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "flower http://127.0.0.1:5555/ user ops (password from FLOWER_BASIC_AUTH)" in done.stdout
        assert "chosen-" not in done.stdout + done.stderr

        env["FLOWER_PORT"] = "not-a-port"
        done = cli("stack", "up", "--procfile", str(procfile), "--no-create-table", env=env, timeout=120)
        assert done.returncode == 2
        assert done.stderr.strip().startswith("error: FLOWER_PORT=")
    finally:
        redis.stop()

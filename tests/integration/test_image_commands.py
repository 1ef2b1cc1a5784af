"""Issue 13, item 2: every command the image runs, run from an installed wheel in an empty directory.

There is no Docker engine here, so the image is reproduced as far as its commands can tell:

* a wheel built from exactly what the Dockerfile's build stage copies (its ``COPY`` sources: no tests,
  no dev stack), installed with its dependencies and the ``cli`` extra, under the constraints file the
  Dockerfile installs with, into an **empty** venv (no system site-packages, nothing of the project's);
* the ``ENTRYPOINT`` (``infra/docker/entrypoint.sh``, under the name the Dockerfile copies it to) and the
  venv's bin first on ``PATH``, the final stage's ``ENV``, an empty working directory (``WORKDIR /app``)
  and a ``/tmp`` of each container's own (``TMPDIR``);
* each command run as the image runs it: ``ENTRYPOINT + command``. Health checks run without the
  entrypoint, as ECS and Docker run them (an exec in the running container, with its environment).

The commands: every container's ``Command`` and ``HealthCheck`` in the synthesized ECS task definitions
(with the worker's environment for one-off ``cachewarm`` tasks, as ECS RunTask overrides give them), the
Dockerfile's ``CMD``, and every docker-compose.yml service built from the Dockerfile (``command`` and
``healthcheck``). Each gets the variables its task definition or service names; values that point at AWS
or at compose's hosts point at local stand-ins instead:

* ECS: ElastiCache (TLS, RBAC) is a redis-server on a TLS port with the deployment's ACL users
  (``cachewarm_infra.acl``, ``default`` off), its certificate from a CA the test makes (``SSL_CERT_FILE``: the
  trust store that holds Amazon's CA in the image); the users' passwords and Flower's credentials, Secrets
  Manager's on AWS, are the test's. DynamoDB is the session's
  dynalite (``AWS_ENDPOINT_URL_DYNAMODB``, credentials ``local``: the task role's on AWS);
* compose: ``redis`` and ``dynalite`` are the session's servers;
* both: the table and key prefix are the test's own, Flower listens on a free port (``FLOWER_PORT``, which
  its command leaves to the environment), and the compose loader's ``/tmp`` is its container's.

Processes run as this test's user, not the image's uid 10001.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from devstack.localstack import PROJECT_ROOT, Service, free_port, wait_for_log
from tests.support.items import put_items, restaurant, review
from tests.support.redis_proc import RedisProc
from tests.support.tls import make_ca_and_server_cert
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
#: How long a long-running process must stay up (from its start) to count as staying up.
STAYS_UP_SECONDS = 10.0


# --- the Dockerfile, read ---------------------------------------------------------------------------


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, as (INSTRUCTION, arguments), per stage (continuations joined)."""
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def copy_args(arguments: str) -> tuple[list[str], str, dict[str, str]]:
    """(sources, destination, flags) of a COPY instruction."""
    words = shlex.split(arguments)
    flags = dict(w[2:].split("=", 1) if "=" in w else (w[2:], "") for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], paths[-1], flags


@dataclass
class Image:
    """The image, as far as its commands can tell."""

    venv: Path
    bin: Path  # where the entrypoint is installed (/usr/local/bin in the image)
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]  # the final stage's ENV (PATH composed here)
    wheel: Path
    timings: dict[str, float] = field(default_factory=dict)

    def environ(self, variables: dict[str, str], tmp: Path) -> dict[str, str]:
        """A container's environment: the image's ENV, ``variables``, its own /tmp and HOME."""
        tmp.mkdir(parents=True, exist_ok=True)
        return {**self.env, "PATH": f"{self.venv / 'bin'}:{self.bin}:/usr/local/bin:/usr/bin:/bin",
                "HOME": str(tmp), "TMPDIR": str(tmp), "LANG": "C.UTF-8", **variables}


def pip(*args: str, python: Path | str = sys.executable, cwd: Path) -> None:
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Image:
    """A wheel of what the Dockerfile's build stage copies, installed with ``[cli]`` into an empty venv."""
    root = tmp_path_factory.mktemp("image")
    build, final = (stages := dockerfile_stages(DOCKERFILE.read_text()))[0], stages[-1]
    assert len(stages) == 2, "a build stage and the image"
    timings: dict[str, float] = {}

    # The build context the Dockerfile copies (WORKDIR /src), and the constraints it installs with.
    src = root / "src"
    src.mkdir()
    constraints = None
    for word, arguments in build:
        if word == "COPY":
            sources, destination, flags = copy_args(arguments)
            assert "from" not in flags
            for source in sources:
                origin = PROJECT_ROOT / source
                target = src / destination / Path(source).name if destination.endswith("/") else src / destination
                target.parent.mkdir(parents=True, exist_ok=True)
                if origin.is_dir():
                    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copy2(origin, target)
        if word == "RUN":
            found = re.search(r"pip install\b.*?(?:-c|--constraint)[ =](\S+)", arguments)
            constraints = src / found.group(1) if found else constraints
    assert (src / "pyproject.toml").is_file() and (src / "workers").is_dir()

    started = time.monotonic()
    dist = root / "dist"
    pip("wheel", "--no-deps", "--wheel-dir", str(dist), str(src), cwd=root)
    (wheel,) = dist.glob("cachewarm-*.whl")
    timings["wheel"] = time.monotonic() - started

    started = time.monotonic()
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    extra = ["-c", str(constraints)] if constraints else []
    pip("install", *extra, f"cachewarm[cli] @ {wheel.as_uri()}", python=python, cwd=root)
    timings["install"] = time.monotonic() - started

    # The image's ENTRYPOINT, ENV and CMD.
    bin_dir = root / "usr-local-bin"
    bin_dir.mkdir()
    entrypoint = json.loads(dict(final)["ENTRYPOINT"])
    cmd = json.loads(dict(final)["CMD"])
    env = {}
    for word, arguments in final:
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(arguments))
        if word == "COPY":
            sources, destination, flags = copy_args(arguments)
            if "from" not in flags and Path(destination).name == entrypoint[0]:
                (source,) = sources
                shutil.copy2(PROJECT_ROOT / source, bin_dir / entrypoint[0])
                (bin_dir / entrypoint[0]).chmod(int(flags.get("chmod", "755"), 8))
    assert (bin_dir / entrypoint[0]).is_file(), f"the Dockerfile does not copy its ENTRYPOINT {entrypoint[0]}"
    assert env.pop("PATH").startswith("/opt/venv/bin:"), "the image puts its venv first on PATH"
    return Image(venv=venv, bin=bin_dir, entrypoint=entrypoint, cmd=cmd, env=env, wheel=wheel, timings=timings)


# --- the deployment's commands, read -----------------------------------------------------------------


@dataclass
class Container:
    """One container's command, health check and environment, from a task definition or compose."""

    name: str
    command: list[str]
    health: list[str] | None  # argv, without Docker's "CMD"
    variables: dict[str, object]  # name -> value (a CloudFormation expression in a task definition)
    secrets: tuple[str, ...] = ()


@dataclass
class TaskDefinitions:
    containers: dict[str, Container]
    types: dict[str, str]  # logical id -> resource type, to resolve Ref and GetAtt


@pytest.fixture(scope="module")
def task_definitions(tmp_path_factory) -> TaskDefinitions:
    """Every container of the synthesized ECS task definitions (production shape, offline context)."""
    from tests.support.infra import OFFLINE_CONTEXT, synth

    raw = synth(OFFLINE_CONTEXT, tmp_path_factory.mktemp("cdk")).raw
    containers = {}
    for resource in raw["Resources"].values():
        if resource["Type"] != "AWS::ECS::TaskDefinition":
            continue
        for spec in resource["Properties"]["ContainerDefinitions"]:
            check = spec.get("HealthCheck", {}).get("Command")
            assert check and check[0] == "CMD", f"{spec['Name']}: no exec-form health check"
            containers[spec["Name"]] = Container(
                spec["Name"], spec["Command"], check[1:], {e["Name"]: e["Value"] for e in spec["Environment"]},
                tuple(s["Name"] for s in spec.get("Secrets", [])))
    assert set(containers) >= {"worker", "beat", "flower"}
    return TaskDefinitions(containers, {key: value["Type"] for key, value in raw["Resources"].items()})


def compose_services() -> dict[str, Container]:
    """The docker-compose.yml services built from the Dockerfile."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    out = {}
    for name, service in services.items():
        build = service.get("build")
        if (build if isinstance(build, str) else (build or {}).get("context")) != ".":
            continue
        command = service["command"]
        command = shlex.split(command) if isinstance(command, str) else list(command)
        test = (service.get("healthcheck") or {}).get("test")
        assert test is None or test[0] == "CMD", f"{name}: health check is not exec form"
        variables = {k: re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", str(v)) for k, v in service["environment"].items()}
        out[name] = Container(name, command, test[1:] if test else None, variables)
    assert set(out) >= {"loader", "worker", "beat", "feed", "flower"}
    return out


def resolve(value: object, refs: dict[str, str], types: dict[str, str]) -> str:
    """A task definition's value, its Ref, GetAtt and Join resolved through ``refs``.

    ``refs`` is keyed by pseudo parameter (``AWS::Region``), by resource type (a Ref: ``AWS::DynamoDB::Table``)
    or by type and attribute (a GetAtt: ``AWS::ElastiCache::ReplicationGroup.PrimaryEndPoint.Address``).
    """
    if isinstance(value, str):
        return value
    key = None
    if isinstance(value, dict) and "Ref" in value:
        key = value["Ref"] if value["Ref"].startswith("AWS::") else types[value["Ref"]]
    elif isinstance(value, dict) and "Fn::GetAtt" in value:
        logical, attribute = value["Fn::GetAtt"]
        key = f"{types[logical]}.{attribute}"
    elif isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(part, refs, types) for part in parts)
    assert key in refs, f"no local stand-in for {value!r} ({key}): map it in the test"
    return refs[key]


# --- processes -------------------------------------------------------------------------------------


@dataclass
class Running:
    """A command started as the image starts it."""

    name: str
    service: Service
    env: dict[str, str]
    started: float

    def log(self) -> str:
        return self.service.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 90) -> None:
        try:
            wait_for_log(self.service, text, timeout)
        except Exception as exc:
            raise AssertionError(f"{self.name}: {exc}\n{self.log()[-3000:]}") from None

    def alive(self) -> bool:
        return self.service.process.poll() is None


class Runner:
    """Starts commands through the entrypoint, from the empty working directory; stops them all at the end."""

    def __init__(self, image: Image, workdir: Path, logs: Path):
        self.image, self.workdir, self.logs = image, workdir, logs
        self.running: list[Running] = []
        logs.mkdir(parents=True, exist_ok=True)

    def argv(self, command: list[str]) -> list[str]:
        return [*self.image.entrypoint, *command]

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Running:
        log_path = self.logs / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(self.argv(command), env=env, cwd=self.workdir, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        running = Running(name, Service(name, "", process, log_path), env, time.monotonic())
        self.running.append(running)
        return running

    def run(self, command: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(command), env=env, cwd=self.workdir, capture_output=True, text=True,
                              timeout=timeout)

    def health(self, container: Container, env: dict[str, str]) -> subprocess.CompletedProcess:
        """The container's health check, as Docker and ECS run it: an exec with the container's environment."""
        assert container.health, f"{container.name} has no health check"
        return subprocess.run(container.health, env=env, cwd=self.workdir, capture_output=True, text=True,
                              timeout=60)

    def stop(self) -> None:
        for running in reversed(self.running):
            running.service.stop(timeout=30)


@pytest.fixture
def runner(image, tmp_path) -> Runner:
    workdir = tmp_path / "app"  # WORKDIR /app: empty
    workdir.mkdir()
    runner = Runner(image, workdir, tmp_path / "logs")
    yield runner
    runner.stop()


def http(url: str, *, auth: tuple[str, str] | None = None, method: str = "GET") -> tuple[int, bytes]:
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
    request = urllib.request.Request(url, headers=headers, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def stays_up(running: list[Running]) -> None:
    """Each process is still running ``STAYS_UP_SECONDS`` after it started."""
    for proc in running:
        time.sleep(max(0.0, proc.started + STAYS_UP_SECONDS - time.monotonic()))
        assert proc.alive(), f"{proc.name} exited with {proc.service.process.returncode}:\n{proc.log()[-3000:]}"


def check_worker(runner: Runner, worker: Running) -> None:
    """The worker is up and answers a ping addressed to its node (``celery inspect ping``, as with ECS Exec)."""
    worker.wait_for("ready.")
    node = f"celery@{socket.gethostname()}"
    done = runner.run(["celery", "-A", "workers", "inspect", "ping", "--timeout", "20", "--destination", node],
                      worker.env, timeout=120)
    assert done.returncode == 0 and "pong" in done.stdout, done.stdout + done.stderr


def check_flower(flower: Running, port: int, login: tuple[str, str]) -> None:
    """Anonymous 401, the login 200, read-only (403 on an action), and the installed config (loopback aside)."""
    flower.wait_for("Visit me at")
    url = f"http://127.0.0.1:{port}"
    assert http(url + "/")[0] == 401
    assert http(url + "/api/workers")[0] == 401
    assert http(url + "/", auth=login)[0] == 200
    status, body = http(url + "/api/worker/pool/grow/celery@anywhere?n=1", auth=login, method="POST")
    assert (status, b"Read only" in body) == (403, True), (status, body)
    status, body = http(url + "/tasks", auth=login)
    assert status == 200 and b"kwargs" in body.lower(), "the task columns come from workers/flowerconfig.py"
    assert "No such file or directory" not in flower.log() and "Traceback" not in flower.log()


def assert_healthy(runner: Runner, container: Container, env: dict[str, str]) -> str:
    done = wait_until(lambda: (d := runner.health(container, env)).returncode == 0 and d, 60,
                      f"{container.name}'s health check")
    return done.stdout


# --- the tests ---------------------------------------------------------------------------------------


def test_the_image_holds_the_installed_runtime_and_no_source_tree(image, runner, tmp_path):
    env = image.environ({}, tmp_path / "tmp")
    probe = ("import importlib.util, sys, workers, cachewarm, cachewarm_cli, loaders; "
             "print(workers.__file__); "
             "print(*(m for m in ('devstack', 'tests', 'benchmarks') if importlib.util.find_spec(m)))")
    done = subprocess.run(["python", "-c", probe], env=env, cwd=runner.workdir, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    installed, missing = done.stdout.splitlines()
    assert Path(installed).is_relative_to(image.venv) and "site-packages" in installed
    assert missing == "", f"not in the image, but importable: {missing}"
    assert not any(runner.workdir.iterdir())
    # The entrypoint's own default command is the Dockerfile's CMD.
    script = (PROJECT_ROOT / "infra" / "docker" / "entrypoint.sh").read_text()
    default = re.search(r'^\s*set -- (.+)$', script, re.MULTILINE).group(1)
    assert shlex.split(default) == image.cmd
    print(f"\nwheel {image.timings['wheel']:.1f}s, empty venv + install {image.timings['install']:.1f}s")


def test_ecs_task_definitions_commands_run_from_the_wheel(image, runner, task_definitions, dynalite, tmp_path):
    # ElastiCache's stand-in: TLS only, a certificate the image's trust store (SSL_CERT_FILE) accepts, and the
    # stack's RBAC users with the stack's access strings (redis-server: the Redis OSS strings).
    from cachewarm_infra import acl

    tls = make_ca_and_server_cert(tmp_path / "tls")
    prefix = f"img{uuid.uuid4().hex[:6]}"  # the test's CACHE_KEY_PREFIX, so the cache user's is this one
    passwords = {user.name: "pw" + secrets.token_hex(16) for user in acl.users(prefix, "redis")}
    users = [arg for user in acl.users(prefix, "redis")
             for arg in ("--user", user.name, "reset", *user.access.split(), f">{passwords[user.name]}")]
    port = free_port()
    redis = RedisProc(tmp_path / "redis-tls", [
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key),
        "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no", *users,
    ], port=port).start()
    table = f"Image-{uuid.uuid4().hex[:8]}"
    refs = {"AWS::Region": "us-east-1", "AWS::DynamoDB::Table": table,
            "AWS::ElastiCache::ReplicationGroup.PrimaryEndPoint.Address": "127.0.0.1"}
    login = ("flower", secrets.token_urlsafe(16))
    secret_values = {"FLOWER_USER": login[0], "FLOWER_PASSWORD": login[1]}
    for role, name in (("BROKER", acl.BROKER_USER), ("CACHE", acl.CACHE_USER)):
        secret_values |= {f"REDIS_{role}_USERNAME": name, f"REDIS_{role}_PASSWORD": passwords[name]}
    flower_port = free_port()
    stand_ins = {"AWS_ENDPOINT_URL_DYNAMODB": dynalite.url, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": dynalite.url,
                 "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "SSL_CERT_FILE": str(tls.ca),
                 "CACHE_KEY_PREFIX": prefix, "FLOWER_PORT": str(flower_port)}

    def environ(container: Container) -> dict[str, str]:
        variables = {name: resolve(value, refs, task_definitions.types) for name, value in container.variables.items()}
        for name in ("REDIS_URL", "CACHE_REDIS_URL"):  # the same endpoint, reached as two users
            url = urlsplit(variables[name])
            assert url.scheme == "rediss" and url.port == 6379 and not url.password, "credentials come from secrets"
            variables[name] = urlunsplit(url._replace(netloc=f"127.0.0.1:{port}"))
        variables.update({name: secret_values[name] for name in container.secrets})
        return image.environ({**variables, **stand_ins}, tmp_path / f"{container.name}-tmp")

    containers = task_definitions.containers
    try:
        envs = {name: environ(container) for name, container in containers.items()}

        # One-off tasks (ECS RunTask with the worker's task definition and a command override).
        for command in (["cachewarm", "table", "create"],):
            done = runner.run(command, envs["worker"])
            assert done.returncode == 0, done.stdout + done.stderr
        from cachewarm import service
        from cachewarm.settings import Settings

        repo = service.repository(Settings.from_env(envs["worker"]))
        put_items(repo, [restaurant("Image Thai"), review("Image Thai", "i" * 40, "2024-05-01T00:00:00")])

        started = {name: runner.start(name, container.command, envs[name]) for name, container in containers.items()}
        check_worker(runner, started["worker"])
        done = runner.run(["cachewarm", "get", "Image Thai", "--json"], envs["worker"])
        assert done.returncode == 0, done.stderr
        assert [r["id"] for r in json.loads(done.stdout)["reviews"]] == ["i" * 40]
        done = runner.run(["cachewarm", "warm", "Image Thai", "--wait"], envs["worker"])
        assert done.returncode == 0, done.stdout + done.stderr  # the worker ran it, over TLS as the two users

        started["beat"].wait_for("beat: Starting...")
        check_flower(started["flower"], flower_port, login)
        for name, container in containers.items():
            assert_healthy(runner, container, envs[name])
        stays_up(list(started.values()))
        assert "Traceback" not in started["beat"].log()
        for proc in started.values():
            leaked = [value for value in (*passwords.values(), login[1]) if value in proc.log()]
            assert not leaked, f"a secret in {proc.name}'s log"
        repo.delete_table(wait=False)
    finally:
        runner.stop()
        redis.stop()


def test_compose_services_and_the_default_cmd_run_from_the_wheel(image, runner, stack_env, dynalite, tmp_path):
    services = compose_services()
    # The Dockerfile's CMD is the compose worker's command: run once, with the compose environment.
    assert image.cmd == services["worker"].command
    table = f"Image-{uuid.uuid4().hex[:8]}"
    flower_port = free_port()
    local_hosts = {"redis": stack_env["REDIS_URL"], "dynalite": dynalite.url}

    def environ(container: Container) -> dict[str, str]:
        variables = {}
        for name, value in container.variables.items():
            host = urlsplit(value).hostname if "://" in value else None
            variables[name] = local_hosts.get(host, value)
        assert urlsplit(container.variables["REDIS_URL"]).hostname == "redis"
        variables.update(TABLE_NAME=table, CACHE_KEY_PREFIX=stack_env["CACHE_KEY_PREFIX"],
                         FLOWER_PORT=str(flower_port))
        return image.environ(variables, tmp_path / f"{container.name}-tmp")

    envs = {name: environ(container) for name, container in services.items()}
    # The loader: table, sample data and load, writing to its container's /tmp.
    loader_tmp = envs["loader"]["TMPDIR"]
    command = [arg.replace("/tmp/", f"{loader_tmp}/") for arg in services["loader"].command]
    done = runner.run(command, envs["loader"], timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    generated = next(Path(loader_tmp).glob("*.jsonl"))
    name = next(json.loads(line)["PK"][5:] for line in generated.open() if '"PK": "REST#' in line)

    started = {name_: runner.start(name_, container.command, envs[name_])
               for name_, container in services.items() if name_ != "loader"}
    check_worker(runner, started["worker"])
    login = tuple(envs["flower"]["FLOWER_BASIC_AUTH"].split(":", 1))
    check_flower(started["flower"], flower_port, login)
    started["beat"].wait_for("beat: Starting...")
    started["feed"].wait_for("feed: following table")

    # The CLI reads a summary; the feed invalidates a write made behind the cache's back.
    def get() -> dict:
        done = runner.run(["cachewarm", "get", name, "--json"], envs["worker"])
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    # The feed starts at the stream's trim horizon, so it first replays the loader's writes (each one
    # invalidates, and holds off storing for 2 s): the summary is cached again once it has caught up.
    wait_until(lambda: get()["source"] == "cache", 90, f"{name!r} served from the cache")
    from cachewarm import service
    from cachewarm.settings import Settings

    repo = service.repository(Settings.from_env(envs["worker"]))
    put_items(repo, [review(name, "z" * 40, "2099-01-01T00:00:00")])
    wait_until(lambda: get()["reviews"][0]["id"] == "z" * 40, 60, "the feed to invalidate the written summary")

    for name_, container in services.items():
        if container.health:
            assert_healthy(runner, container, envs[name_])
    stays_up(list(started.values()))
    for proc in (started["beat"], started["feed"]):
        assert "Traceback" not in proc.log(), proc.log()[-3000:]
    repo.delete_table(wait=False)

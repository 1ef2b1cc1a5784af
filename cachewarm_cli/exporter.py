"""``cachewarm exporter --port N``: the cache's metrics for Prometheus at ``/metrics``.

Reads Redis on every scrape (:class:`cachewarm.exporter.CacheCollector`) and keeps
nothing, so it can be restarted or run twice at will. The cache is read as the
cache's client (``CACHE_REDIS_URL``, else ``REDIS_URL``); the broker, for queue
lengths only (``LLEN``), as ``REDIS_URL``, through a client that sends nothing
but ``LLEN`` and the handshake, so the deployment's read-only ``metrics`` user
(``LLEN`` and ``PING`` only) is enough there.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

import typer

from cachewarm_cli.output import console, usage_error

app = typer.Typer()

#: The Procfile's, compose's and the CDK app's port. celery-exporter (whose queue metric we share) listens on
#: 9808; the next port lets both run side by side on one host.
DEFAULT_PORT = 9809


def parse_port(text: str) -> int:
    """``--port``'s value as a TCP port (0: any free port); a bad value is a usage error (exit 2)."""
    try:
        port = int(text)
    except ValueError:
        usage_error(f"--port: expected a TCP port number (0-65535), got {text!r}")
    if not 0 <= port <= 65535:
        usage_error(f"--port: expected a TCP port number (0-65535), got {port}")
    return port


def broker_client(url: str, timeout: float) -> Any:
    """A client for queue lengths: no CLIENT SETNAME or SETINFO, which a read-only ACL user may not run."""
    import redis

    from cachewarm.clients import REDIS_PROTOCOL

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                protocol=REDIS_PROTOCOL, lib_name=None, lib_version=None)


def build_registry() -> Any:
    """A registry holding the project's collector, wired to the live settings."""
    from prometheus_client import CollectorRegistry

    from cachewarm.clients import cache_redis
    from cachewarm.exporter import CacheCollector
    from cachewarm.keys import KeySchema
    from cachewarm.settings import get_settings
    from workers.config import QUEUES

    settings = get_settings()
    registry = CollectorRegistry()
    registry.register(CacheCollector(
        cache_redis(settings), KeySchema(prefix=settings.key_prefix),
        broker=broker_client(settings.broker_url, max(settings.redis_timeout, 2.0)), queues=QUEUES,
    ))
    return registry


@app.command("exporter")
def exporter(
    port: str = typer.Option(str(DEFAULT_PORT), "--port", metavar="PORT",
                             help=f"TCP port to serve /metrics on (default {DEFAULT_PORT}; 0: any free port)."),
    address: str = typer.Option("127.0.0.1", "--address",
                                help="Address to listen on (0.0.0.0: every interface; default loopback)."),
) -> None:
    """Serve the cache's metrics for Prometheus at /metrics, in the foreground (Ctrl-C stops)."""
    from prometheus_client import start_http_server

    from cachewarm.masking import mask_url
    from cachewarm.settings import get_settings

    number = parse_port(port)
    registry = build_registry()
    try:
        server, thread = start_http_server(number, addr=address, registry=registry)
    except (OSError, ValueError) as exc:  # in use, not ours to bind (< 1024), no such address
        usage_error(f"--port/--address: cannot listen on {address}:{number}: {exc}")
    settings = get_settings()
    host = f"[{address}]" if ":" in address else address
    console.print(f"exporter: http://{host}:{server.server_port}/metrics (cache {mask_url(settings.cache_url)}, "
                  f"broker {mask_url(settings.broker_url)})", markup=False, soft_wrap=True)
    stop = threading.Event()
    # honcho, docker and ECS stop processes with SIGTERM: close the socket and exit 0, as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        while not stop.wait(0.5) and thread.is_alive():
            pass
    server.shutdown()
    server.server_close()
    console.print("exporter: stopped", markup=False)

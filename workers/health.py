"""Health checks of the image's long-running processes: ``python -m workers.health worker|beat|flower``.

One command per role, identical in the ECS task definitions (``healthCheck``) and in
docker-compose.yml (``healthcheck:``); it needs only the runtime packages, and it runs
inside the container next to the process it checks. Exit 0 healthy, 1 unhealthy (one
line on stderr saying why), 2 a usage or settings error.

* ``worker``: its liveness file (``workers.liveness``) exists, was written by a live
  process, and was touched within ``--max-age`` seconds (default 60). The worker touches
  it every 5 s from its event loop while its consumer is connected, so the check fails
  when the worker is gone, its main loop is stuck, or it has been cut off from the broker
  for a minute. It costs a ``stat``: nothing is sent to Redis, so a busy broker neither
  pays for it nor makes it time out, and a short Redis failover does not fail every
  worker at once.
* ``beat``: the same for beat's file, touched after every scheduler tick (default
  ``--max-age`` 150 s: a tick can wait out redbeat's 60 s ``retry_period`` during a Redis
  outage, and a beat waiting for Redis, or standing by for the lock, is alive).
* ``flower``: ``GET /healthcheck`` on Flower's port (``FLOWER_PORT``, default 5555) over
  loopback, which Flower serves without a login; 200 means its web server answers.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

from workers import liveness

#: Seconds a liveness file may age before its process counts as stuck.
MAX_AGE = {"worker": 60.0, "beat": 150.0}
ROLES = ("worker", "beat", "flower")


def command(role: str) -> list[str]:
    """The health check of ``role`` as an argv (what the task definitions and compose run)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return ["python", "-m", "workers.health", role]


def check_liveness(role: str, max_age: float) -> tuple[bool, str]:
    """(healthy, why) from ``role``'s liveness file."""
    sign = liveness.read(role)
    path = liveness.alive_path(role)
    if sign is None:
        return False, f"{role}: no liveness file at {path} (not started, stopped, or cannot write it)"
    if not liveness.pid_alive(sign.pid):
        return False, f"{role}: process {sign.pid} that wrote {path} is gone"
    if sign.age > max_age:
        return False, f"{role}: process {sign.pid} last showed life {sign.age:.0f}s ago (limit {max_age:.0f}s)"
    return True, f"{role}: alive (pid {sign.pid}, {sign.age:.1f}s ago)"


def flower_url() -> str:
    """Flower's /healthcheck on this host, from the same settings Flower's config reads."""
    from cachewarm.settings import get_settings

    settings = get_settings()
    address = settings.flower_address
    if address in ("", "0.0.0.0"):
        address = "127.0.0.1"
    elif address == "::":
        address = "::1"
    host = f"[{address}]" if ":" in address else address
    prefix = os.environ.get("FLOWER_URL_PREFIX", "").strip("/")
    return f"http://{host}:{settings.flower_port}{'/' + prefix if prefix else ''}/healthcheck"


def check_flower(timeout: float) -> tuple[bool, str]:
    """(healthy, why) from Flower's /healthcheck."""
    url = flower_url()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read(64)
    except urllib.error.HTTPError as exc:
        return False, f"flower: {url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"flower: {url}: {getattr(exc, 'reason', exc)}"
    if status != 200 or body.strip() != b"OK":
        return False, f"flower: {url} answered {status} {body[:20]!r}"
    return True, f"flower: {url} answered OK"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.health", description=__doc__.split("\n", 1)[0])
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--max-age", type=float, default=None,
                        help="worker/beat: seconds since the last sign of life (default: worker 60, beat 150)")
    parser.add_argument("--timeout", type=float, default=5.0, help="flower: seconds to wait for an answer")
    args = parser.parse_args(argv)

    from cachewarm.errors import ConfigError

    try:
        if args.role == "flower":
            healthy, why = check_flower(args.timeout)
        else:
            healthy, why = check_liveness(args.role, MAX_AGE[args.role] if args.max_age is None else args.max_age)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(why, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())

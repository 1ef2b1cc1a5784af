"""Installs resolve to what was tested: constraints.txt against pyproject.toml, the venv, the image and the Makefile.

``constraints.txt`` pins every package of ``pip install -e '.[dev,infra]'`` at the
version the tests ran on; ``make setup`` and the Dockerfile install with it. These
tests read the packages' own metadata from this venv (no network): the pins must
cover everything the extras need, on this Python and on the image's (the
Dockerfile's ``PYTHON_VERSION``), satisfy pyproject's ranges, and be what this
venv has. Last, the protocol the Redis clients state (cachewarm/clients.py) is
checked against what the pinned redis-py and kombu do.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
#: Extras of `make setup` and of the image (besides the runtime dependencies).
SETUP_EXTRAS = ("cli", "local", "dev", "infra")
IMAGE_EXTRAS = tuple(re.search(r"pip install -c constraints\.txt '\.\[([a-z,]+)\]'", DOCKERFILE).group(1).split(","))


def read_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, raw in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][^\s;]*)", line)
        assert match, f"constraints.txt:{number}: {raw!r} is not an exact pin (name==version)"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"constraints.txt:{number}: {name} is pinned twice"
        pins[name] = match.group(2)
    return pins


PINS = read_pins()


def requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """pyproject's runtime dependencies and those of ``extras`` (its self-references, like cachewarm[cli], expanded)."""
    found = [Requirement(r) for r in PROJECT["dependencies"]]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for raw in PROJECT["optional-dependencies"][extra]:
            req = Requirement(raw)
            if canonicalize_name(req.name) == canonicalize_name(PROJECT["name"]):
                pending.extend(req.extras)
            else:
                found.append(req)
    return found


def marker_environment(python: str | None = None) -> dict[str, str]:
    """Markers of this interpreter, or of CPython ``python`` ("3.12") on this platform (its x.y.0 release)."""
    env = default_environment()
    if python:
        env.update(python_version=python, python_full_version=f"{python}.0")
    return env


def needed(extras: tuple[str, ...], env: dict[str, str]) -> tuple[set[str], set[str]]:
    """Every distribution the project with ``extras`` needs under ``env``, from installed metadata.

    Returns (names, names needed but not installed here: their own dependencies are unknown).
    """
    names: set[str] = set()
    absent: set[str] = set()
    stack = [req for req in requirements(extras) if req.marker is None or req.marker.evaluate(env)]
    walked: set[tuple[str, frozenset[str]]] = set()
    while stack:
        req = stack.pop()
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in walked:
            continue
        walked.add(key)
        names.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            absent.add(name)
            continue
        for raw in requires:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": extra})
                                         for extra in ("", *req.extras)):
                stack.append(sub)
    return names, absent


def test_the_image_and_make_setup_install_with_the_constraints():
    assert IMAGE_EXTRAS == ("cli",)
    assert "COPY pyproject.toml README.md constraints.txt ./" in DOCKERFILE
    assert "$(PY_STAMP): pyproject.toml constraints.txt" in MAKEFILE  # a changed pin reinstalls
    assert "pip install --quiet -c constraints.txt -e '.[dev,infra]'" in MAKEFILE
    # The build context is an allow-list: the Dockerfile's COPY needs the file admitted.
    assert "!constraints.txt" in (ROOT / ".dockerignore").read_text().splitlines(), \
        ".dockerignore must admit constraints.txt (a line '!constraints.txt'), or the image's COPY fails"


def test_every_range_in_pyproject_admits_its_pin():
    problems = []
    for req in requirements(SETUP_EXTRAS):
        pin = PINS.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req} is not pinned")
        elif not req.specifier.contains(pin, prereleases=True):
            problems.append(f"{req}: the pin {pin} is outside the range")
        elif not any(spec.operator in (">=", "==", "~=") for spec in req.specifier):
            problems.append(f"{req} has no lower bound (the tested minor)")
    assert not problems, problems


def test_lower_bounds_are_the_tested_minors():
    """``>=`` names the minor release the tests ran on (or a later patch of it), not an older one."""
    stale = []
    for req in requirements(SETUP_EXTRAS):
        pin = Version(PINS[canonicalize_name(req.name)])
        for spec in req.specifier:
            if spec.operator == ">=" and Version(spec.version).release[:2] < pin.release[:2]:
                stale.append(f"{req}: tested {pin}")
    assert not stale, stale


@pytest.mark.parametrize("python", [None, re.search(r"ARG PYTHON_VERSION=(\d+\.\d+)", DOCKERFILE).group(1)],
                         ids=["this-python", "image-python"])
def test_every_package_the_image_needs_is_pinned(python):
    names, absent = needed(IMAGE_EXTRAS, marker_environment(python))
    assert not absent, f"needed on Python {python or 'here'} but not installed here (pin them by hand): {absent}"
    assert sorted(names - set(PINS)) == []
    assert {"celery", "kombu", "redis", "hiredis", "celery-redbeat", "flower", "typer"} <= names


def test_every_package_of_make_setup_is_pinned_and_nothing_else():
    names, absent = needed(SETUP_EXTRAS, marker_environment())
    assert not absent, f"run make setup: not installed {sorted(absent)}"
    assert sorted(names - set(PINS)) == [], "not pinned: regenerate constraints.txt (its header says how)"
    assert sorted(set(PINS) - names) == [], "pinned but needed by nothing: regenerate constraints.txt"


def test_this_venv_runs_the_pinned_versions():
    names, _ = needed(SETUP_EXTRAS, marker_environment())
    drift = {name: (metadata.version(name), PINS[name]) for name in sorted(names & set(PINS))
             if Version(metadata.version(name)) != Version(PINS[name])}
    assert not drift, f"installed != pinned (run make setup, or move the pin and test it): {drift}"


def test_the_redis_protocol_is_stated_where_it_can_be_and_the_default_elsewhere():
    """RESP3 everywhere (cachewarm/clients.py says why): stated in our clients, redis-py's default in kombu's."""
    import redis
    from kombu.transport import redis as kombu_redis

    from cachewarm.clients import REDIS_PROTOCOL, redis_client
    from cachewarm.settings import Settings
    from workers.config import celery_config

    assert REDIS_PROTOCOL == 3
    client = redis_client("redis://127.0.0.1:1/0", timeout=0.1)  # nothing connects until a command
    assert client.connection_pool.connection_kwargs["protocol"] == REDIS_PROTOCOL
    conf = celery_config(Settings.from_env({"REDIS_URL": "rediss://:pw@cache.example:6379/0?ssl_cert_reqs=required"}))
    assert conf["result_backend"] == "rediss://:pw@cache.example:6379/0?ssl_cert_reqs=required&protocol=3"
    assert conf["redbeat_redis_options"]["protocol"] == REDIS_PROTOCOL
    # The broker: kombu passes no protocol, so its connections take redis-py's default. If kombu gains
    # the option, or redis-py's default moves, state it in broker_transport_options (workers/config.py).
    assert "protocol" not in kombu_redis.Channel.from_transport_options
    assert redis.Connection(host="127.0.0.1", port=1).protocol == REDIS_PROTOCOL

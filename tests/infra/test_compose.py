"""docker-compose.yml, parsed (no Docker engine needed) and checked against the project's contract."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml")

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_SERVICES = ("loader", "worker", "beat", "flower")
COMMANDS = {
    "worker": ["celery", "-A", "workers", "worker", "--loglevel=INFO"],
    "beat": ["celery", "-A", "workers", "beat", "--loglevel=INFO"],
    "flower": [
        "celery", "-A", "workers", "flower", "--conf=workers/flowerconfig.py", "--address=0.0.0.0", "--port=5555",
    ],
}
#: botocore reads these itself; dynalite ignores them but requests must be signed.
AWS_SDK_NAMES = {"AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
#: Used when cachewarm.settings cannot be imported (kept in step with its ENV_VARS by the test below).
LITERAL_CONTRACT = {
    "REDIS_URL",
    "CACHE_REDIS_URL",
    "REDIS_HOSTNAME",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_REGION",
    "TABLE_NAME",
    "CACHE_TTL_SECONDS",
}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with an empty environment: the default."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def contract_names() -> set[str]:
    try:
        from cachewarm.settings import ENV_VARS
    except ImportError:
        return LITERAL_CONTRACT | AWS_SDK_NAMES | {"FLOWER_BASIC_AUTH"}
    return set(ENV_VARS.values()) | AWS_SDK_NAMES | {"FLOWER_BASIC_AUTH"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def command(service: dict) -> list[str]:
    value = service["command"]
    return shlex.split(value) if isinstance(value, str) else list(value)


def environment(service: dict) -> dict[str, str]:
    value = service.get("environment", {})
    if isinstance(value, list):
        value = dict(item.split("=", 1) for item in value)
    return {key: interpolate(str(val)) for key, val in value.items()}


def published(service: dict) -> list[tuple[str, int]]:
    """(host address, container port) of each published port."""
    out = []
    for port in service.get("ports", []):
        parts = interpolate(str(port)).split(":")
        assert len(parts) == 3, f"bind published ports to an address: {port}"
        out.append((parts[0], int(parts[2])))
    return out


def test_all_services_are_present(services):
    assert {"redis", "dynalite", *PYTHON_SERVICES} <= set(services)


def test_redis_is_broker_and_cache_with_volatile_lfu_and_aof(services):
    redis = services["redis"]
    assert redis["image"].startswith("redis:")
    args = " ".join(command(redis))
    assert args.startswith("redis-server")
    assert "--maxmemory-policy volatile-lfu" in args
    assert "--appendonly yes" in args
    assert re.search(r"--maxmemory \d+[kmg]b", args), "volatile-lfu only acts under a maxmemory limit"
    assert any(volume.endswith(":/data") for volume in redis["volumes"]), "AOF needs a volume"
    assert "healthcheck" in redis


def test_dynalite_runs_the_locked_npm_package_on_a_node_image(services):
    dynalite = services["dynalite"]
    assert dynalite["image"].startswith("node:")
    args = command(dynalite)
    spec = next(arg for arg in args if arg.startswith("dynalite"))
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/dynalite"]["version"]
    assert spec == f"dynalite@{locked}", "compose should run the version package-lock.json pins"
    assert "--path" in args and "--port" in args
    assert "healthcheck" in dynalite


def test_python_services_share_one_image_built_from_the_dockerfile(services):
    assert (REPO_ROOT / "Dockerfile").is_file()
    images = set()
    for name in PYTHON_SERVICES:
        service = services[name]
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert context == "."
        images.add(service["image"])
    assert len(images) == 1


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_long_running_services_use_the_contract_commands(services, name):
    assert command(services[name]) == COMMANDS[name]
    depends = services[name]["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["dynalite"]["condition"] == "service_healthy"


def test_flower_has_basic_auth_and_listens_on_loopback_only(services):
    flower = services["flower"]
    auth = environment(flower)["FLOWER_BASIC_AUTH"]
    user, _, password = auth.partition(":")
    assert user and password
    assert ("127.0.0.1", 5555) in published(flower)


def test_loader_is_one_shot_and_creates_generates_and_loads(services):
    loader = services["loader"]
    assert str(loader.get("restart", "no")) == "no"
    script = " ".join(command(loader))
    for step in ("cachewarm table create", "cachewarm generate -o", "cachewarm load"):
        assert step in script
    generated = re.search(r"cachewarm generate -o (\S+)", script).group(1)
    assert f"cachewarm load {generated}" in script
    assert services["beat"]["depends_on"]["loader"]["condition"] == "service_completed_successfully"


def test_published_ports_bind_to_loopback(services):
    for name, service in services.items():
        for address, _ in published(service):
            assert address == "127.0.0.1", f"{name} publishes beyond loopback"


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_environment_names_and_values_match_the_settings(services, name):
    env = environment(services[name])
    allowed = contract_names()
    assert set(env) <= allowed, f"unknown variables: {set(env) - allowed}"
    for required in ("REDIS_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION", "TABLE_NAME"):
        assert required in env

    # The URLs point at the compose services and their ports.
    redis_url = urlsplit(env["REDIS_URL"])
    assert redis_url.scheme == "redis" and redis_url.hostname == "redis" and (redis_url.port or 6379) == 6379
    endpoint = urlsplit(env["AWS_ENDPOINT_URL_DYNAMODB"])
    dynalite_args = command(services["dynalite"])
    assert endpoint.hostname == "dynalite"
    assert endpoint.port == int(dynalite_args[dynalite_args.index("--port") + 1])

    settings = pytest.importorskip("cachewarm.settings")
    parsed = settings.Settings.from_env(env)
    assert parsed.redis_url == env["REDIS_URL"]
    assert parsed.dynamodb_endpoint == env["AWS_ENDPOINT_URL_DYNAMODB"]
    assert parsed.table_name == env["TABLE_NAME"]


def test_literal_contract_matches_the_settings_module():
    settings = pytest.importorskip("cachewarm.settings")
    assert set(settings.ENV_VARS.values()) >= LITERAL_CONTRACT


def test_loader_uses_cli_commands_that_exist(services):
    typer = pytest.importorskip("typer")
    cli = pytest.importorskip("cachewarm_cli")
    root = typer.main.get_command(cli.app)
    script = " ".join(command(services["loader"]))
    missing = []
    for step in re.findall(r"cachewarm ((?:[a-z][a-z-]* ?)+)", script):
        group = root
        for word in step.split():
            commands = getattr(group, "commands", None)
            if commands is None:
                break
            if word not in commands:
                missing.append(step.strip())
                break
            group = commands[word]
    if missing:
        pytest.skip(f"not in the cachewarm CLI yet: {missing}")

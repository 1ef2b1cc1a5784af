"""docker-compose.yml, parsed (no Docker engine needed) and checked against the project's contract."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from cachewarm.settings import ENV_VARS, Settings
from cachewarm_cli import app as cli_app
from workers.health import command as health_command

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PYTHON_SERVICES = ("loader", "worker", "beat", "flower", "feed", "exporter")
COMMANDS = {
    "worker": ["celery", "-A", "workers", "worker", "--loglevel=INFO"],
    "beat": ["celery", "-A", "workers", "beat", "--loglevel=INFO"],
    "feed": ["cachewarm", "feed", "follow"],
    # Every interface of its container; published on loopback only (below).
    "exporter": ["cachewarm", "exporter", "--port", "9809", "--address", "0.0.0.0"],
    # No --conf: the app points Flower at the installed workers/flowerconfig.py; the port is FLOWER_PORT's.
    "flower": ["celery", "-A", "workers", "flower", "--address=0.0.0.0"],
}
#: Services with the health check of their role (the feed has none: see the comment in docker-compose.yml).
HEALTH_CHECKED = ("worker", "beat", "flower")
#: botocore reads these itself; dynalite ignores them but requests must be signed.
AWS_SDK_NAMES = {"AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
#: Flower's own variables: its login, and FLOWER_READ_ONLY (workers/flowerconfig.py makes read-only the default).
CONTRACT_NAMES = set(ENV_VARS.values()) | AWS_SDK_NAMES | {"FLOWER_BASIC_AUTH", "FLOWER_READ_ONLY"}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with an empty environment: the default."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "", value)


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml, parsed; a missing or empty file fails every test that reads it."""
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    parsed = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(parsed, dict) and isinstance(parsed.get("services"), dict), "no services in docker-compose.yml"
    return parsed


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def command(service: dict) -> list[str]:
    """The service's command as argv (a missing command is a failure, not an empty list)."""
    assert "command" in service, f"service has no command: {sorted(service)}"
    value = service["command"]
    return shlex.split(value) if isinstance(value, str) else list(value)


def has_healthcheck(service: dict) -> bool:
    """A healthcheck with a real test (not disabled, not empty)."""
    test = (service.get("healthcheck") or {}).get("test")
    return bool(test) and test != ["NONE"] and not (service.get("healthcheck") or {}).get("disable")


def bind_mounts(service: dict) -> dict[str, str]:
    """Container path -> host path of each bind mount (short syntax, ./ relative to the repo)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith((".", "/")):
            out[target] = source
    return out


def named_volumes(service: dict) -> dict[str, str]:
    """Container path -> volume name of each named volume."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if not source.startswith((".", "/")):
            out[target] = source
    return out


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
    missing = {"redis", "dynalite", *PYTHON_SERVICES} - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_redis_is_broker_and_cache_with_volatile_lfu_and_aof(services):
    redis = services["redis"]
    assert redis["image"].startswith("redis:")
    args = " ".join(command(redis))
    assert args.startswith("redis-server")
    assert "--maxmemory-policy volatile-lfu" in args
    assert "--appendonly yes" in args
    assert re.search(r"--maxmemory \d+[kmg]b", args), "volatile-lfu only acts under a maxmemory limit"
    assert any(volume.endswith(":/data") for volume in redis["volumes"]), "AOF needs a volume"
    assert has_healthcheck(redis)


def test_dynalite_runs_the_dev_stack_launcher_not_plain_dynalite(services):
    dynalite = services["dynalite"]
    assert dynalite["image"].startswith("node:")
    args = command(dynalite)
    assert args[:2] == ["node", "devstack/dynalite-server.js"], "plain dynalite exits on a client reset (#183)"
    assert "--path" in args and "--port" in args
    assert args[args.index("--host") + 1] == "0.0.0.0", "other containers reach it over the compose network"
    assert has_healthcheck(dynalite)

    # The launcher is the checkout's own file, at the path the command names.
    workdir = Path(dynalite["working_dir"])
    mounts = bind_mounts(dynalite)
    launcher = str(workdir / args[1])
    assert launcher in mounts, f"{launcher} is not mounted into the dynalite service"
    assert (REPO_ROOT / mounts[launcher]).resolve() == REPO_ROOT / "devstack" / "dynalite-server.js"
    # ... with the module that serves the Streams API next to it.
    streams = str(workdir / "devstack" / "dynalite-streams.js")
    assert streams in mounts
    assert (REPO_ROOT / mounts[streams]).resolve() == REPO_ROOT / "devstack" / "dynalite-streams.js"


def test_dynalite_finds_the_locked_package_installed_by_npm_ci(services, compose):
    dynalite, deps = services["dynalite"], services["dynalite-deps"]
    # node resolves require('dynalite') through NODE_PATH, a volume the one-shot service fills.
    node_path = Path(environment(dynalite)["NODE_PATH"])
    volume = named_volumes(dynalite).get(str(node_path.parent))
    assert volume and volume in compose["volumes"], f"{node_path} is not on a named volume"
    assert named_volumes(deps).get(deps["working_dir"]) == volume
    assert node_path == Path(deps["working_dir"]) / "node_modules"
    assert dynalite["depends_on"]["dynalite-deps"]["condition"] == "service_completed_successfully"
    assert str(deps.get("restart", "no")) == "no"

    # npm ci installs exactly package-lock.json (the dynalite the launcher checked), from the checkout.
    script = " ".join(command(deps))
    assert re.search(r"\bnpm ci\b", script), "npm ci installs the locked versions; npm install may not"
    mounts = bind_mounts(deps)
    for name in ("package.json", "package-lock.json"):
        host = next((source for target, source in mounts.items() if target.endswith("/" + name)), None)
        assert host is not None and (REPO_ROOT / host).resolve() == REPO_ROOT / name, f"{name} not mounted"
        copied_from = next(target for target, source in mounts.items() if source == host)
        assert copied_from in script, f"the install does not copy {name} from {copied_from}"


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


def test_flower_has_basic_auth_is_read_only_and_listens_on_loopback_only(services):
    flower = services["flower"]
    env = environment(flower)
    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    assert user and password
    assert env["FLOWER_READ_ONLY"] == "true", "read-only unless the operator sets FLOWER_READ_ONLY=false"
    # The command names no port: Flower listens on FLOWER_PORT (its default here), which is what is published.
    port = Settings.from_env(env).flower_port
    assert ("127.0.0.1", port) in published(flower)


@pytest.mark.parametrize("name", HEALTH_CHECKED)
def test_long_running_services_run_the_health_check_of_their_role(services, name):
    """The same command as the ECS task definitions (tests/infra/test_cdk_app.py checks those)."""
    check = services[name]["healthcheck"]
    assert check["test"] == ["CMD", *health_command(name)]
    assert check.get("start_period") and int(check.get("retries", 0)) >= 1 and check.get("timeout")


def test_the_feed_and_the_one_shots_have_no_health_check(services):
    # The image declares no HEALTHCHECK either, so nothing is inherited.
    assert not re.search(r"^\s*HEALTHCHECK\b", (REPO_ROOT / "Dockerfile").read_text(), re.MULTILINE | re.IGNORECASE)
    for name in ("feed", "exporter", "loader", "dynalite-deps"):
        assert "healthcheck" not in services[name], name


def test_every_healthy_condition_names_a_service_with_a_health_check(services):
    """`depends_on: condition: service_healthy` on a service without one would never start the dependant."""
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            if spec.get("condition") == "service_healthy":
                assert has_healthcheck(services[dependency]), f"{name} waits for {dependency}, which has no check"
    # Beat dispatches only once a worker consumes (its entries expire unrun); Flower needs no worker.
    assert services["beat"]["depends_on"]["worker"]["condition"] == "service_healthy"
    assert "worker" not in services["flower"]["depends_on"]


def test_loader_is_one_shot_and_creates_generates_and_loads(services):
    loader = services["loader"]
    assert str(loader.get("restart", "no")) == "no"
    script = " ".join(command(loader))
    for step in ("cachewarm table create", "cachewarm generate -o", "cachewarm load"):
        assert step in script
    generated = re.search(r"cachewarm generate -o (\S+)", script).group(1)
    assert f"cachewarm load {generated}" in script
    assert services["beat"]["depends_on"]["loader"]["condition"] == "service_completed_successfully"


def test_the_exporter_publishes_its_port_on_loopback(services):
    from cachewarm_cli.exporter import DEFAULT_PORT

    assert ("127.0.0.1", DEFAULT_PORT) in published(services["exporter"])


def test_published_ports_bind_to_loopback(services):
    for name, service in services.items():
        for address, _ in published(service):
            assert address == "127.0.0.1", f"{name} publishes beyond loopback"


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_environment_names_and_values_match_the_settings(services, name):
    env = environment(services[name])
    allowed = CONTRACT_NAMES
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
    assert env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] == env["AWS_ENDPOINT_URL_DYNAMODB"], "the launcher serves both"

    parsed = Settings.from_env(env)
    assert parsed.redis_url == env["REDIS_URL"]
    assert parsed.dynamodb_endpoint == env["AWS_ENDPOINT_URL_DYNAMODB"]
    assert parsed.table_name == env["TABLE_NAME"]
    assert parsed.streams_endpoint == env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"]


def test_loader_uses_cli_commands_that_exist(services):
    root = typer.main.get_command(cli_app)
    script = " ".join(command(services["loader"]))
    steps = re.findall(r"cachewarm ((?:[a-z][a-z-]* ?)+)", script)
    assert steps, "the loader runs no cachewarm command"
    missing = []
    for step in steps:
        group = root
        for word in step.split():
            commands = getattr(group, "commands", None)
            if commands is None:
                break
            if word not in commands:
                missing.append(step.strip())
                break
            group = commands[word]
    assert not missing, f"not in the cachewarm CLI: {missing}"

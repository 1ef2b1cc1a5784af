"""The cache's engine (Valkey 8 by default, Redis OSS 7.1 as an option) and its RBAC users.

The access strings come from ``cachewarm_infra.acl``, the module tests/integration/test_acl.py applies to a
real Valkey and redis-server; here the template is checked to carry exactly those strings, each user's
password as a dynamic reference to its own generated secret, and each client wired to the right user.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cachewarm.keys import KeySchema
from cachewarm_infra import acl
from cachewarm_infra.cache import parameter_group_family
from cachewarm_infra.config import CacheEngine, ConfigError, InfraConfig
from tests.support.infra import OFFLINE_CONTEXT, synth

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO_ROOT / "infra" / "docker" / "entrypoint.sh"


def config(**context: object) -> InfraConfig:
    return InfraConfig.from_context(context.get)


def resources(raw: dict, kind: str) -> dict[str, dict]:
    return {key: value for key, value in raw["Resources"].items() if value["Type"] == kind}


def only(raw: dict, kind: str) -> dict:
    (found,) = resources(raw, kind).values()
    return found["Properties"]


def users_by_name(raw: dict) -> dict[str, tuple[str, dict]]:
    users = resources(raw, "AWS::ElastiCache::User")
    return {u["Properties"]["UserName"]: (key, u["Properties"]) for key, u in users.items()}


def password_secret(user: dict) -> str:
    """The logical id of the secret a user's password is resolved from (a dynamic reference)."""
    (password,) = user["Passwords"]
    parts = password["Fn::Join"][1]
    assert parts[0] == "{{resolve:secretsmanager:" and parts[2] == ":SecretString:password::}}", parts
    return parts[1]["Ref"]


def container(raw: dict, name: str) -> dict:
    return next(
        c
        for t in resources(raw, "AWS::ECS::TaskDefinition").values()
        for c in t["Properties"]["ContainerDefinitions"]
        if c["Name"] == name
    )


def function_env(raw: dict, handler: str) -> dict:
    (fn,) = [f for f in resources(raw, "AWS::Lambda::Function").values() if f["Properties"]["Handler"] == handler]
    return fn["Properties"]["Environment"]["Variables"]


# --- context ---------------------------------------------------------------------------------------


def test_valkey_8_is_the_production_default_and_demo_keeps_the_original_redis():
    cfg = config()
    assert (cfg.cache_engine, cfg.cache_engine_version) == (CacheEngine.VALKEY, "8.0")
    demo = config(mode="demo")
    assert (demo.cache_engine, demo.cache_engine_version) == (CacheEngine.REDIS, "7.1")
    assert config(mode="demo", cacheEngine="valkey").cache_engine is CacheEngine.VALKEY


@pytest.mark.parametrize(
    ("context", "engine", "version"),
    [
        ({"cacheEngine": "redis"}, CacheEngine.REDIS, "7.1"),
        ({"cacheEngine": "Redis", "cacheEngineVersion": "7.0"}, CacheEngine.REDIS, "7.0"),
        ({"cacheEngine": "valkey", "cacheEngineVersion": "8.1"}, CacheEngine.VALKEY, "8.1"),
        ({"cacheEngineVersion": "7.2"}, CacheEngine.VALKEY, "7.2"),
        # The old key still works, and means what it always meant: Redis OSS at that version.
        ({"redisEngineVersion": "7.0"}, CacheEngine.REDIS, "7.0"),
        ({"redisEngineVersion": "6.2", "cacheEngine": "redis"}, CacheEngine.REDIS, "6.2"),
    ],
)
def test_engine_and_version_from_context(context, engine, version):
    cfg = config(**context)
    assert (cfg.cache_engine, cfg.cache_engine_version) == (engine, version)


@pytest.mark.parametrize(
    ("context", "key", "words"),
    [
        ({"cacheEngine": "memcached"}, "cacheEngine", "valkey or redis"),
        ({"cacheEngineVersion": "7.1"}, "cacheEngineVersion", "Valkey 7.2 or 8.x"),
        ({"cacheEngine": "redis", "cacheEngineVersion": "8.0"}, "cacheEngineVersion", "Redis OSS"),
        ({"cacheEngine": "redis", "cacheEngineVersion": "6.0"}, "cacheEngineVersion", "6.2"),
        ({"redisEngineVersion": "5.0.6"}, "redisEngineVersion", "Redis OSS"),
        ({"redisEngineVersion": "7.1", "cacheEngineVersion": "7.1"}, "redisEngineVersion", "cacheEngineVersion"),
        ({"redisEngineVersion": "7.1", "cacheEngine": "valkey"}, "redisEngineVersion", "cacheEngineVersion"),
    ],
)
def test_bad_engine_context_names_the_key(context, key, words):
    with pytest.raises(ConfigError, match=key) as raised:
        config(**context)
    assert raised.value.key == key and words in str(raised.value)


@pytest.mark.parametrize(
    ("engine", "version", "family"),
    [("valkey", "8.0", "valkey8"), ("valkey", "8.1", "valkey8"), ("valkey", "7.2", "valkey7"),
     ("redis", "7.1", "redis7"), ("redis", "6.2", "redis6.x")],
)
def test_parameter_group_family_follows_engine_and_major_version(engine, version, family):
    assert parameter_group_family(engine, version) == family


# --- the access strings ----------------------------------------------------------------------------


def test_access_strings_keep_the_cache_user_to_its_prefix_and_off_dangerous_commands():
    cache = acl.cache_access("cw")
    words = cache.split()
    # The key schema's roots (cachewarm.keys.KeySchema, whatever its version), not hard-coded here.
    roots = [f"~{KeySchema(prefix=p).root}*" for p in ("cw", "cw-bench")]
    assert words[:4] == ["on", *roots, "-@all"]
    # The cache's namespace and the benchmark's, never the whole prefix: redbeat keeps cw:redbeat:... keys.
    assert [w for w in words if w.startswith("~")] == roots
    assert not [w for w in words if w.startswith("&") or w.startswith("+@") or w == "allkeys"]
    granted = {w[1:] for w in words if w.startswith("+")}
    for forbidden in ("flushall", "flushdb", "keys", "config", "config|set", "debug", "shutdown", "acl", "eval",
                      "publish", "subscribe", "psubscribe", "blpop", "brpop", "migrate", "restore", "module"):
        assert forbidden not in granted, forbidden
    assert "client|setinfo" in granted and "client|setinfo" not in acl.cache_access("cw", "redis")
    assert acl.DEFAULT_ACCESS.split()[0] == "off" and "+" not in acl.DEFAULT_ACCESS
    assert acl.METRICS_ACCESS == "on ~* -@all +llen +ping"
    assert acl.BROKER_ACCESS.split()[:3] == ["on", "~*", "&*"] and "-@dangerous" in acl.BROKER_ACCESS
    with pytest.raises(ValueError):
        acl.cache_access("c*")


# --- the template: production, Valkey (the offline shape) -------------------------------------------


def test_production_is_valkey_8_multi_az_tls_and_rbac(offline):
    group = only(offline.raw, "AWS::ElastiCache::ReplicationGroup")
    assert (group["Engine"], group["EngineVersion"]) == ("valkey", "8.0")
    assert only(offline.raw, "AWS::ElastiCache::ParameterGroup")["CacheParameterGroupFamily"] == "valkey8"
    assert group["MultiAZEnabled"] is True and group["AutomaticFailoverEnabled"] is True
    assert group["NumCacheClusters"] == 2  # primary + replicasPerShard (1)
    assert group["TransitEncryptionEnabled"] is True and group["TransitEncryptionMode"] == "required"
    assert group["AtRestEncryptionEnabled"] is True
    assert "NumNodeGroups" not in group and "AuthToken" not in group  # cluster mode disabled; no shared token
    (user_group_id,) = [ref["Ref"] for ref in group["UserGroupIds"]]
    user_group = offline.raw["Resources"][user_group_id]["Properties"]
    users = users_by_name(offline.raw)
    assert sorted(ref["Ref"] for ref in user_group["UserIds"]) == sorted(key for key, _ in users.values())
    assert user_group["Engine"] == "valkey"
    expected = {user.name: user.access for user in acl.users("cw", "valkey")}
    assert {name: props["AccessString"] for name, (_, props) in users.items()} == expected
    assert users["default"][1]["AccessString"] == "off -@all"
    assert {props["Engine"] for _, props in users.values()} == {"valkey"}
    # User ids are unique per account and region: the stack's name keeps two stacks apart.
    ids = [props["UserId"] for _, props in users.values()] + [user_group["UserGroupId"]]
    assert len(set(ids)) == len(ids) and all(i.startswith("cachewarm-") and len(i) <= 40 for i in ids)


def test_every_user_has_its_own_generated_secret(offline):
    secrets = resources(offline.raw, "AWS::SecretsManager::Secret")
    seen = set()
    for name, (_, user) in users_by_name(offline.raw).items():
        secret_id = password_secret(user)
        seen.add(secret_id)
        generator = secrets[secret_id]["Properties"]["GenerateSecretString"]
        assert json.loads(generator["SecretStringTemplate"]) == {"username": name}
        assert generator["GenerateStringKey"] == "password"
        assert generator["ExcludePunctuation"] is True and generator["PasswordLength"] >= 32
    assert len(seen) == 4


def test_containers_connect_as_broker_and_as_cache_user(offline):
    users = users_by_name(offline.raw)
    broker, cache = password_secret(users["broker"][1]), password_secret(users["cache"][1])
    for name in ("worker", "beat", "flower"):
        spec = container(offline.raw, name)
        env = {e["Name"]: e["Value"] for e in spec["Environment"]}
        secrets = {s["Name"]: s["ValueFrom"] for s in spec["Secrets"]}
        assert env["CACHE_REDIS_URL"] == env["REDIS_URL"]
        for variable, secret_id, field in (
            ("REDIS_BROKER_USERNAME", broker, "username"),
            ("REDIS_BROKER_PASSWORD", broker, "password"),
            ("REDIS_CACHE_USERNAME", cache, "username"),
            ("REDIS_CACHE_PASSWORD", cache, "password"),
        ):
            assert secrets[variable] == {"Fn::Join": ["", [{"Ref": secret_id}, f":{field}::"]]}, variable


def test_functions_use_the_cache_and_the_metrics_users(offline):
    users = users_by_name(offline.raw)
    capture = function_env(offline.raw, "cachewarm.change_capture.lambda_handler")
    assert capture["REDIS_AUTH_SECRET_ARN"] == {"Ref": password_secret(users["cache"][1])}
    depth = function_env(offline.raw, "index.handler")
    assert depth["REDIS_AUTH_SECRET_ARN"] == {"Ref": password_secret(users["metrics"][1])}
    # Neither function, nor anything else, is granted the broker's or the default user's secret but the tasks.
    policies = json.dumps(resources(offline.raw, "AWS::IAM::Policy"))
    assert password_secret(users["default"][1]) not in policies


def test_demo_mode_has_no_users(demo):
    assert not resources(demo.raw, "AWS::ElastiCache::User")
    assert not resources(demo.raw, "AWS::ElastiCache::UserGroup")
    assert only(demo.raw, "AWS::ElastiCache::CacheCluster")["Engine"] == "redis"


@pytest.mark.slow
def test_redis_oss_is_an_option(tmp_path):
    redis = synth({**OFFLINE_CONTEXT, "cacheEngine": "redis"}, tmp_path)
    group = only(redis.raw, "AWS::ElastiCache::ReplicationGroup")
    assert (group["Engine"], group["EngineVersion"]) == ("redis", "7.1")
    assert only(redis.raw, "AWS::ElastiCache::ParameterGroup")["CacheParameterGroupFamily"] == "redis7"
    assert group["MultiAZEnabled"] is True and group["TransitEncryptionMode"] == "required"
    assert only(redis.raw, "AWS::ElastiCache::UserGroup")["Engine"] == "redis"
    users = users_by_name(redis.raw)
    assert users["cache"][1]["AccessString"] == acl.cache_access("cw", "redis")
    assert {props["Engine"] for _, props in users.values()} == {"redis"}


# --- the image's entrypoint ------------------------------------------------------------------------


def run_entrypoint(env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "env"], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True,
        check=check,
    )


def environment(result: subprocess.CompletedProcess) -> dict[str, str]:
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_entrypoint_splices_the_broker_and_the_cache_user():
    url = "rediss://primary.example:6379/0?ssl_cert_reqs=required"
    out = environment(run_entrypoint({
        "REDIS_URL": url, "CACHE_REDIS_URL": url,
        "REDIS_BROKER_USERNAME": "broker", "REDIS_BROKER_PASSWORD": "B4roker",
        "REDIS_CACHE_USERNAME": "cache", "REDIS_CACHE_PASSWORD": "C4che",
    }))
    assert out["REDIS_URL"] == "rediss://broker:B4roker@primary.example:6379/0?ssl_cert_reqs=required"
    assert out["CACHE_REDIS_URL"] == "rediss://cache:C4che@primary.example:6379/0?ssl_cert_reqs=required"
    assert not [name for name in out if name.startswith(("REDIS_BROKER_", "REDIS_CACHE_"))]


def test_entrypoint_keeps_credentials_and_the_token_path():
    out = environment(run_entrypoint({
        "REDIS_URL": "redis://u:p@redis:6379/0", "CACHE_REDIS_URL": "redis://redis:6379/1",
        "REDIS_BROKER_USERNAME": "broker", "REDIS_BROKER_PASSWORD": "x", "REDIS_AUTH_TOKEN": "t0k",
    }))
    assert out["REDIS_URL"] == "redis://u:p@redis:6379/0"  # credentials given explicitly win
    assert out["CACHE_REDIS_URL"] == "redis://:t0k@redis:6379/1"  # no cache user: the AUTH token


def test_entrypoint_refuses_credentials_that_would_need_escaping():
    result = run_entrypoint(
        {"REDIS_URL": "rediss://h:6379/0", "REDIS_BROKER_USERNAME": "broker", "REDIS_BROKER_PASSWORD": "a@b/c"},
        check=False,
    )
    assert result.returncode == 64 and "REDIS_BROKER_PASSWORD" in result.stderr
    assert "a@b/c" not in result.stderr

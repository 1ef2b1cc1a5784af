"""Context parsing (cachewarm_infra.config) and the image entrypoint: fast, no synth."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from aws_cdk import RemovalPolicy

from cachewarm.settings import Settings
from cachewarm_infra.config import CONTEXT_KEYS, ConfigError, InfraConfig, Mode

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO_ROOT / "infra" / "docker" / "entrypoint.sh"


def config(**context: object) -> InfraConfig:
    return InfraConfig.from_context(context.get)


def test_defaults_are_production():
    cfg = config()
    assert cfg.mode is Mode.PRODUCTION and not cfg.demo
    assert cfg.stack_name == "Cachewarm"
    assert cfg.table_name == "Restaurants"
    assert cfg.redis_port == 6379
    assert cfg.removal_policy == RemovalPolicy.RETAIN
    assert cfg.vpc_id is None and cfg.private_subnet_ids == ()


def test_demo_mode_defaults():
    cfg = config(mode="demo")
    assert cfg.demo
    assert cfg.stack_name == "CachewarmDemo"
    assert cfg.cache_node_type == "cache.t3.small"
    assert cfg.removal_policy == RemovalPolicy.DESTROY


def test_offline_context_parses_lists():
    cfg = config(vpcId="vpc-0123", privateSubnetIds="subnet-0a, subnet-0b", peerSecurityGroupId="sg-0123,sg-0456")
    assert cfg.private_subnet_ids == ("subnet-0a", "subnet-0b")
    assert cfg.peer_security_group_ids == ("sg-0123", "sg-0456")


def test_cdk_json_may_hold_typed_values():
    cfg = config(privateSubnetIds=["subnet-0a"], vpcId="vpc-0123", redisPort=6380, workerMaxCount=4)
    assert cfg.private_subnet_ids == ("subnet-0a",)
    assert cfg.redis_port == 6380 and cfg.worker_max_count == 4


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"mode": "staging"}, "mode"),
        ({"privateSubnetIds": "subnet-0a"}, "privateSubnetIds"),
        ({"vpcId": "vpc-1", "privateSubnetIds": "subnet-0a,bogus"}, "privateSubnetIds"),
        ({"peerSecurityGroupId": "0.0.0.0/0"}, "peerSecurityGroupId"),
        ({"vpcCidr": "0.0.0.0/0"}, "vpcCidr"),
        ({"redisPort": "80"}, "redisPort"),
        ({"redisPort": "abc"}, "redisPort"),
        ({"removalPolicy": "snapshot"}, "removalPolicy"),
        ({"workerMinCount": "5", "workerMaxCount": "2"}, "workerMaxCount"),
        ({"redisEngineVersion": "5.0.6"}, "redisEngineVersion"),
        ({"tableName": "x"}, "tableName"),  # what the workers would refuse at start (TABLE_NAME)
        ({"tableName": "bad name!"}, "tableName"),
        ({"cacheTtlSeconds": "0"}, "cacheTtlSeconds"),
        ({"cacheTtlSeconds": str(30 * 86400 + 1)}, "cacheTtlSeconds"),
    ],
)
def test_bad_context_names_the_key(context, key):
    with pytest.raises(ConfigError) as caught:
        config(**context)
    assert caught.value.key == key
    assert f"context {key}=" in str(caught.value)


def test_app_settings_default_to_the_apps_defaults():
    cfg, app = config(), Settings()
    assert (cfg.table_name, cfg.cache_ttl_seconds) == (app.table_name, app.cache_ttl)
    assert config(tableName="Other.Table_1", cacheTtlSeconds="60").table_name == "Other.Table_1"


def test_every_documented_key_is_in_docs():
    docs = (REPO_ROOT / "docs" / "deploying.md").read_text()
    for key in CONTEXT_KEYS:
        assert f"`{key}`" in docs, key


def test_vpc_lookup_without_credentials_is_a_clear_error(tmp_path):
    import aws_cdk as cdk

    from cachewarm_infra.app import build_app

    app = cdk.App(context={"vpcId": "vpc-0123"}, outdir=str(tmp_path))
    with pytest.raises(ConfigError, match="needs AWS credentials"):
        build_app(app, environ={})


def run_entrypoint(env: dict[str, str]) -> dict[str, str]:
    """The environment the entrypoint hands to the command."""
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "env"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_entrypoint_splices_the_auth_token_into_the_redis_urls():
    out = run_entrypoint(
        {
            "REDIS_URL": "rediss://primary.example:6379/0?ssl_cert_reqs=required",
            "CACHE_REDIS_URL": "rediss://cache.example:6380/1",
            "REDIS_AUTH_TOKEN": "s3cr3t",
        }
    )
    assert out["REDIS_URL"] == "rediss://:s3cr3t@primary.example:6379/0?ssl_cert_reqs=required"
    assert out["CACHE_REDIS_URL"] == "rediss://:s3cr3t@cache.example:6380/1"
    assert "REDIS_AUTH_TOKEN" not in out


def test_entrypoint_keeps_urls_that_already_have_credentials_and_builds_flower_auth():
    out = run_entrypoint(
        {"REDIS_URL": "redis://:pw@redis:6379/0", "REDIS_AUTH_TOKEN": "other", "FLOWER_PASSWORD": "p4ss"}
    )
    assert out["REDIS_URL"] == "redis://:pw@redis:6379/0"
    assert out["FLOWER_BASIC_AUTH"] == "flower:p4ss"
    assert "FLOWER_PASSWORD" not in out


def test_entrypoint_changes_nothing_without_secrets():
    out = run_entrypoint({"REDIS_URL": "redis://redis:6379/0", "FLOWER_BASIC_AUTH": "a:b"})
    assert out["REDIS_URL"] == "redis://redis:6379/0"
    assert out["FLOWER_BASIC_AUTH"] == "a:b"

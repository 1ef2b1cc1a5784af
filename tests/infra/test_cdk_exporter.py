"""The exporter's ECS service in the synthesized template (the rest of the app: test_cdk_app.py)."""

from __future__ import annotations

import json

import pytest

from tests.infra.test_cdk_app import (
    REDIS_USER_SECRETS,
    container,
    service,
    task_role_statements,
)
from tests.support.infra import get_att_id, ingress_rules, resources

pytestmark = pytest.mark.slow


def test_the_exporter_reads_the_broker_as_the_metrics_user_and_is_reachable_only_from_peers(offline, created):
    from cachewarm_cli.exporter import DEFAULT_PORT
    from cachewarm_infra.exporter import EXPORTER_COMMAND, EXPORTER_PORT

    assert EXPORTER_PORT == DEFAULT_PORT
    spec = container(offline.raw, "exporter")
    assert spec["Command"] == EXPORTER_COMMAND
    assert spec["Image"] == container(offline.raw, "worker")["Image"]
    assert [m["ContainerPort"] for m in spec["PortMappings"]] == [EXPORTER_PORT]
    assert (spec["HealthCheck"]["Interval"], spec["HealthCheck"]["Retries"]) == (30, 3)
    secrets = {s["Name"]: s["ValueFrom"] for s in spec["Secrets"]}
    assert set(secrets) == REDIS_USER_SECRETS
    # The broker's user is the read-only metrics user (cachewarm_infra.acl: LLEN and PING only).
    metrics_secret = [key for key, value in resources(offline.raw, "AWS::SecretsManager::Secret").items()
                      if "metrics" in json.dumps(value["Properties"].get("GenerateSecretString", {}))]
    assert len(metrics_secret) == 1
    assert metrics_secret[0] in json.dumps(secrets["REDIS_BROKER_PASSWORD"])
    assert metrics_secret[0] not in json.dumps(secrets["REDIS_CACHE_PASSWORD"])
    env = {e["Name"]: e["Value"] for e in spec["Environment"]}
    assert env["CACHE_REDIS_URL"] == env["REDIS_URL"]
    # No AWS permission at all (no ECS Exec either).
    assert task_role_statements(offline.raw, "exporter") == []
    assert "EnableExecuteCommand" not in service(offline.raw, "exporter") or \
        not service(offline.raw, "exporter")["EnableExecuteCommand"]
    for synth in (offline, created):
        exporter = service(synth.raw, "exporter")
        network = exporter["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED" and exporter["ServiceRegistries"]
        rules = [rule for group in network["SecurityGroups"] for rule in ingress_rules(synth.raw, get_att_id(group))]
        assert rules and all(rule["FromPort"] == rule["ToPort"] == EXPORTER_PORT for rule in rules)
    assert "ExporterUrl" in offline.raw["Outputs"]

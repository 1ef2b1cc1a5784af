"""The CDK app, synthesized in-process and checked with aws_cdk.assertions.

Resources are found by what they are (type, properties, and the references between them), never by
generated logical ids. The three shapes are built once per session in conftest.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cachewarm.schema import create_table_request
from cachewarm.settings import ENV_VARS, SPECS
from tests.support.infra import get_att_id, ingress_rules, only, resources
from workers.config import QUEUES

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_COMMAND = ["celery", "-A", "workers", "worker", "--loglevel=INFO"]
BEAT_COMMAND = ["celery", "-A", "workers", "beat", "--loglevel=INFO"]
# No --conf: the app points Flower at the installed workers/flowerconfig.py; the port is FLOWER_PORT's (5555).
FLOWER_COMMAND = ["celery", "-A", "workers", "flower", "--address=0.0.0.0"]
#: Variables the image's entrypoint (infra/docker/entrypoint.sh) consumes and turns into contract ones.
ENTRYPOINT_INPUTS = {
    "REDIS_BROKER_USERNAME", "REDIS_BROKER_PASSWORD", "REDIS_CACHE_USERNAME", "REDIS_CACHE_PASSWORD",
    "REDIS_AUTH_TOKEN", "FLOWER_USER", "FLOWER_PASSWORD",
}
#: What production containers get from Secrets Manager for Redis: the broker and cache users (RBAC).
REDIS_USER_SECRETS = {"REDIS_BROKER_USERNAME", "REDIS_BROKER_PASSWORD", "REDIS_CACHE_USERNAME", "REDIS_CACHE_PASSWORD"}
#: Flower's own variable (not a cachewarm setting): workers/flowerconfig.py makes read-only the default.
FLOWER_OWN = {"FLOWER_READ_ONLY"}


# --- helpers: navigate the template by references, not by names ---------------------------------





def task_definition(raw: dict, container: str) -> tuple[str, dict]:
    """The task definition whose (single) container has this name."""
    for key, value in resources(raw, "AWS::ECS::TaskDefinition").items():
        names = [c["Name"] for c in value["Properties"]["ContainerDefinitions"]]
        if names == [container]:
            return key, value["Properties"]
    raise AssertionError(f"no task definition with container {container}")


def container(raw: dict, name: str) -> dict:
    return task_definition(raw, name)[1]["ContainerDefinitions"][0]


def service(raw: dict, name: str) -> dict:
    key, _ = task_definition(raw, name)
    for value in resources(raw, "AWS::ECS::Service").values():
        if value["Properties"]["TaskDefinition"] == {"Ref": key}:
            return value["Properties"]
    raise AssertionError(f"no service runs {name}")


def role_statements(raw: dict, role_id: str) -> list[dict]:
    statements = []
    for policy in resources(raw, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def task_role_statements(raw: dict, name: str) -> list[dict]:
    _, props = task_definition(raw, name)
    return role_statements(raw, get_att_id(props["TaskRoleArn"]))


def actions(statement: dict) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else list(value)


def contract_env_names() -> set[str]:
    """Every variable the app reads: each setting's, and those read in their place (AWS_DEFAULT_REGION)."""
    fallbacks = {spec.fallback for spec in SPECS.values() if spec.fallback}
    return set(ENV_VARS.values()) | fallbacks


# --- network and Redis ---------------------------------------------------------------------------


def test_subnet_group_covers_the_private_subnets_from_context(offline):
    _, group = only(offline.raw, "AWS::ElastiCache::SubnetGroup")
    assert group["Properties"]["SubnetIds"] == ["subnet-0a", "subnet-0b"]


def test_no_vpc_is_created_or_looked_up_when_subnets_are_given(offline):
    offline.template.resource_count_is("AWS::EC2::VPC", 0)
    # Imported, not looked up: every security group sits in the VPC id from context.
    for group in resources(offline.raw, "AWS::EC2::SecurityGroup").values():
        assert group["Properties"]["VpcId"] == "vpc-0123"


def test_redis_port_admits_only_security_groups_including_the_peer(offline):
    _, group = only(offline.raw, "AWS::ElastiCache::ReplicationGroup")
    props = group["Properties"]
    assert props["Port"] == 6379
    (redis_sg,) = [get_att_id(ref) for ref in props["SecurityGroupIds"]]
    rules = ingress_rules(offline.raw, redis_sg)
    assert rules, "Redis must admit the workers"
    for rule in rules:
        assert rule["IpProtocol"] == "tcp" and rule["FromPort"] == rule["ToPort"] == 6379
        assert "CidrIp" not in rule and "CidrIpv6" not in rule, rule
        assert "SourceSecurityGroupId" in rule, rule
    sources = [rule["SourceSecurityGroupId"] for rule in rules]
    worker_groups = service(offline.raw, "worker")["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
    (change_capture,) = [
        f["Properties"]["VpcConfig"]["SecurityGroupIds"]
        for f in resources(offline.raw, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "cachewarm.change_capture.lambda_handler"
    ]
    assert "sg-0123" in sources
    assert worker_groups[0] in sources
    assert change_capture[0] in sources
    assert len(sources) == 3


def test_nothing_is_open_to_the_world(offline, demo, created):
    for synth in (offline, demo, created):
        for group_id in resources(synth.raw, "AWS::EC2::SecurityGroup"):
            for rule in ingress_rules(synth.raw, group_id):
                assert rule.get("CidrIp") not in ("0.0.0.0/0",) and rule.get("CidrIpv6") != "::/0", rule


def test_production_cache_is_a_multi_az_encrypted_valkey_replication_group_with_rbac(offline):
    """Details (users, access strings, secrets, the Redis OSS option): tests/infra/test_cache_engine.py."""
    offline.template.resource_count_is("AWS::ElastiCache::CacheCluster", 0)
    _, group = only(offline.raw, "AWS::ElastiCache::ReplicationGroup")
    props = group["Properties"]
    assert (props["Engine"], props["EngineVersion"]) == ("valkey", "8.0")
    assert props["AtRestEncryptionEnabled"] is True
    assert props["TransitEncryptionEnabled"] is True
    assert props["TransitEncryptionMode"] == "required"
    assert props["MultiAZEnabled"] is True
    assert props["AutomaticFailoverEnabled"] is True
    assert props["NumCacheClusters"] >= 2
    # RBAC instead of one AUTH token: no token in the template at all.
    assert "AuthToken" not in props
    (user_group,) = props["UserGroupIds"]
    assert offline.raw["Resources"][user_group["Ref"]]["Type"] == "AWS::ElastiCache::UserGroup"


@pytest.mark.parametrize(("shape", "family"), [("offline", "valkey8"), ("demo", "redis7")])
def test_parameter_group_is_volatile_lfu_and_attached(shape, family, request):
    synth = request.getfixturevalue(shape)
    key, group = only(synth.raw, "AWS::ElastiCache::ParameterGroup")
    assert group["Properties"]["Properties"] == {"maxmemory-policy": "volatile-lfu"}
    assert group["Properties"]["CacheParameterGroupFamily"] == family
    caches = resources(synth.raw, "AWS::ElastiCache::ReplicationGroup") | resources(
        synth.raw, "AWS::ElastiCache::CacheCluster"
    )
    assert [c["Properties"]["CacheParameterGroupName"] for c in caches.values()] == [{"Ref": key}]


def test_demo_mode_is_the_original_single_node_cache_cluster(demo):
    demo.template.resource_count_is("AWS::ElastiCache::ReplicationGroup", 0)
    _, cluster = only(demo.raw, "AWS::ElastiCache::CacheCluster")
    props = cluster["Properties"]
    assert props["Engine"] == "redis"
    assert props["CacheNodeType"] == "cache.t3.small"
    assert props["NumCacheNodes"] == 1
    subnet_group, _ = only(demo.raw, "AWS::ElastiCache::SubnetGroup")
    assert props["CacheSubnetGroupName"] == {"Ref": subnet_group}
    (redis_sg,) = [get_att_id(ref) for ref in props["VpcSecurityGroupIds"]]
    assert all("SourceSecurityGroupId" in rule for rule in ingress_rules(demo.raw, redis_sg))
    # No TLS in demo mode, so the URL is redis:// and no token is injected.
    env = {e["Name"]: e["Value"] for e in container(demo.raw, "worker")["Environment"]}
    assert json.dumps(env["REDIS_URL"]).startswith('{"Fn::Join": ["", ["redis://')
    assert "Secrets" not in container(demo.raw, "worker")


# --- table ---------------------------------------------------------------------------------------


def assert_schema_of_table_create(props: dict) -> None:
    """The template's table has exactly the keys, index and billing ``cachewarm table create`` sends."""
    request = create_table_request(props["TableName"])
    for key in ("KeySchema", "GlobalSecondaryIndexes", "BillingMode"):
        assert props[key] == request[key], key
    assert props["StreamSpecification"]["StreamViewType"] == request["StreamSpecification"]["StreamViewType"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(request["AttributeDefinitions"], key=str)


def test_table_has_the_schema_of_table_create_with_pitr_and_encryption(offline):
    _, table = only(offline.raw, "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["TableName"] == "Restaurants"
    assert_schema_of_table_create(props)
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}


def test_removal_policy_retains_in_production_and_destroys_in_demo(offline, demo):
    offline.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {"DeletionProtectionEnabled": True},
        },
    )
    demo.template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Delete"})


def test_removal_policy_is_configurable(tmp_path):
    from tests.support.infra import OFFLINE_CONTEXT, synth

    destroyed = synth({**OFFLINE_CONTEXT, "removalPolicy": "destroy"}, tmp_path)
    destroyed.template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Delete"})


# --- grants --------------------------------------------------------------------------------------


def test_worker_role_gets_exactly_the_table_actions_on_table_and_index(offline):
    """The stack grants TABLE_ACTIONS on the table and its index, in one statement.

    Which actions those are is not restated here: tests/infra/test_permissions.py derives them from the
    calls the workers and the ``cachewarm`` command make in the integration suite.
    """
    from cachewarm_infra.stack import TABLE_ACTIONS, UNGRANTED_TABLE_ACTIONS

    table_id, _ = only(offline.raw, "AWS::DynamoDB::Table")
    statements = [
        s for s in task_role_statements(offline.raw, "worker") if any(a.startswith("dynamodb:") for a in actions(s))
    ]
    assert len(statements) == 1
    (statement,) = statements
    assert sorted(actions(statement)) == sorted(TABLE_ACTIONS)
    assert len(set(TABLE_ACTIONS)) == len(TABLE_ACTIONS)
    assert not any("*" in action for action in actions(statement))
    # Never the table's lifecycle, its stream or its backups: the stack owns those.
    assert not set(actions(statement)) & set(UNGRANTED_TABLE_ACTIONS)
    for word in ("Table", "Stream", "Backup", "Export", "Import"):
        assert not [a for a in actions(statement) if word in a and a != "dynamodb:DescribeTable"], word
    assert statement["Resource"] == [
        {"Fn::GetAtt": [table_id, "Arn"]},
        {"Fn::Join": ["", [{"Fn::GetAtt": [table_id, "Arn"]}, "/index/*"]]},
    ]


@pytest.mark.parametrize("name", ["beat", "flower"])
def test_beat_and_flower_have_no_table_access(offline, name):
    for statement in task_role_statements(offline.raw, name):
        assert not any(a.startswith("dynamodb:") for a in actions(statement)), statement


def test_no_statement_grants_all_dynamodb_actions(offline):
    for policy in resources(offline.raw, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert not any(a in ("*", "dynamodb:*") for a in actions(statement)), statement


# --- workers -------------------------------------------------------------------------------------


def test_services_run_the_contract_commands_from_one_image(offline):
    assert container(offline.raw, "worker")["Command"] == WORKER_COMMAND
    assert container(offline.raw, "beat")["Command"] == BEAT_COMMAND
    assert container(offline.raw, "flower")["Command"] == FLOWER_COMMAND
    images = {json.dumps(container(offline.raw, name)["Image"]) for name in ("worker", "beat", "flower")}
    assert len(images) == 1
    offline.template.resource_count_is("AWS::ECS::Service", 4)  # and the exporter


@pytest.mark.parametrize("name", ["worker", "beat", "flower"])
def test_every_container_has_the_health_check_of_its_role(offline, name):
    """``python -m workers.health ROLE``: the same command as docker-compose.yml's (tests/infra/test_compose.py)."""
    from workers.health import command

    check = container(offline.raw, name)["HealthCheck"]
    assert check["Command"] == ["CMD", *command(name)]
    # Unhealthy after 3 failures 30 s apart, once a start period has passed; each check may take 10 s.
    assert (check["Interval"], check["Retries"], check["Timeout"]) == (30, 3, 10)
    assert 30 <= check["StartPeriod"] <= 300


def test_flower_is_read_only(offline):
    env = {e["Name"]: e["Value"] for e in container(offline.raw, "flower")["Environment"]}
    assert env["FLOWER_READ_ONLY"] == "true"
    assert [m["ContainerPort"] for m in container(offline.raw, "flower")["PortMappings"]] == [5555]


def test_environment_is_wired_from_the_constructs(offline):
    table_id, _ = only(offline.raw, "AWS::DynamoDB::Table")
    group_id, _ = only(offline.raw, "AWS::ElastiCache::ReplicationGroup")
    contract = contract_env_names()
    for name in ("worker", "beat", "flower"):
        spec = container(offline.raw, name)
        env = {e["Name"]: e["Value"] for e in spec["Environment"]}
        secrets = {s["Name"]: s["ValueFrom"] for s in spec.get("Secrets", [])}
        allowed = contract | (FLOWER_OWN if name == "flower" else set())
        assert set(env) <= allowed, set(env) - allowed
        assert set(secrets) <= contract | ENTRYPOINT_INPUTS
        assert env["TABLE_NAME"] == {"Ref": table_id}
        url = env["REDIS_URL"]["Fn::Join"][1]
        assert url[0] == "rediss://"
        assert url[1] == {"Fn::GetAtt": [group_id, "PrimaryEndPoint.Address"]}
        assert url[2] == ":6379/0?ssl_cert_reqs=required"
        # The cache is the same endpoint reached as another user: the entrypoint splices each URL's user.
        assert env["CACHE_REDIS_URL"] == env["REDIS_URL"]
        assert set(secrets) >= REDIS_USER_SECRETS
        assert "REDIS_AUTH_TOKEN" not in secrets
        # Nothing secret sits in plain environment.
        assert not any(re.search(r"TOKEN|PASSWORD|SECRET", key) for key in env)
    flower = {s["Name"] for s in container(offline.raw, "flower")["Secrets"]}
    assert {"FLOWER_USER", "FLOWER_PASSWORD"} <= flower


def test_entrypoint_consumes_every_injected_variable():
    script = (REPO_ROOT / "infra" / "docker" / "entrypoint.sh").read_text()
    for name in ENTRYPOINT_INPUTS | {"REDIS_URL", "FLOWER_BASIC_AUTH"}:
        assert name in script
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "infra/docker/entrypoint.sh" in dockerfile


def test_beat_is_a_singleton_and_workers_autoscale_on_queue_depth(offline):
    beat = service(offline.raw, "beat")
    assert beat["DesiredCount"] == 1
    assert beat["DeploymentConfiguration"]["MaximumPercent"] == 100
    _, target = only(offline.raw, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["ScalableDimension"] == "ecs:service:DesiredCount"
    assert target["Properties"]["MinCapacity"] >= 0 and target["Properties"]["MaxCapacity"] >= 2
    policies = set(resources(offline.raw, "AWS::ApplicationAutoScaling::ScalingPolicy"))
    alarms = [
        a
        for a in resources(offline.raw, "AWS::CloudWatch::Alarm").values()
        if any(action.get("Ref") in policies for action in a["Properties"].get("AlarmActions", []))
    ]
    assert {(a["Properties"]["Namespace"], a["Properties"]["MetricName"]) for a in alarms} == {
        ("Cachewarm", "QueueDepth")
    }
    assert {a["Properties"]["ComparisonOperator"] for a in alarms} == {
        "GreaterThanOrEqualToThreshold",
        "LessThanOrEqualToThreshold",
    }


def test_queue_depth_function_watches_the_celery_queues(offline):
    from cachewarm_infra.queue_metrics import DEFAULT_QUEUES

    (function,) = [
        f
        for f in resources(offline.raw, "AWS::Lambda::Function").values()
        if "QUEUES" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    env = function["Properties"]["Environment"]["Variables"]
    assert env["QUEUES"].split(",") == list(DEFAULT_QUEUES)
    assert env["REDIS_TLS"] == "true"
    assert "VpcConfig" in function["Properties"]
    assert set(DEFAULT_QUEUES) == set(QUEUES)


def test_flower_is_private_authenticated_and_reachable_only_from_peers(offline, created):
    for synth in (offline, created):
        flower = service(synth.raw, "flower")
        network = flower["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
        assert flower["ServiceRegistries"], "Flower is registered in the private DNS namespace"
        synth.template.resource_count_is("AWS::ElasticLoadBalancingV2::LoadBalancer", 0)
        groups = [get_att_id(ref) for ref in network["SecurityGroups"]]
        flower_rules = [rule for group in groups for rule in ingress_rules(synth.raw, group)]
        assert flower_rules and all(rule["FromPort"] == rule["ToPort"] == 5555 for rule in flower_rules)
    offline_rules = [
        rule
        for group in service(offline.raw, "flower")["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
        for rule in ingress_rules(offline.raw, get_att_id(group))
    ]
    assert [rule.get("SourceSecurityGroupId") for rule in offline_rules] == ["sg-0123"]
    created_rules = [
        rule
        for group in service(created.raw, "flower")["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
        for rule in ingress_rules(created.raw, get_att_id(group))
    ]
    _, vpc = only(created.raw, "AWS::EC2::VPC")
    assert [rule.get("CidrIp") for rule in created_rules] == [vpc["Properties"]["CidrBlock"]]


def test_outputs_name_redis_table_and_flower(offline, demo):
    for synth in (offline, demo):
        outputs = synth.raw["Outputs"]
        for key in ("RedisEndpoint", "TableName", "FlowerUrl", "ClusterName", "WorkerTaskDefinitionArn"):
            assert key in outputs
        assert outputs["FlowerUrl"]["Value"] == "http://flower.cachewarm.internal:5555"


def test_created_vpc_has_private_subnets_flow_logs_and_a_dynamodb_endpoint(created):
    created.template.resource_count_is("AWS::EC2::VPC", 1)
    created.template.resource_count_is("AWS::EC2::FlowLog", 1)
    created.template.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway"})
    _, group = only(created.raw, "AWS::ElastiCache::SubnetGroup")
    subnets = resources(created.raw, "AWS::EC2::Subnet")
    private = {key for key, value in subnets.items() if not value["Properties"].get("MapPublicIpOnLaunch")}
    assert {ref["Ref"] for ref in group["Properties"]["SubnetIds"]} == private


# --- cdk-nag ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["offline", "demo", "created"])
def test_cdk_nag_reports_nothing_unacknowledged(shape, request):
    from aws_cdk.assertions import Annotations, Match
    from cdk_nag import AwsSolutionsChecks

    synth = request.getfixturevalue(shape)
    report = AwsSolutionsChecks().validate_scope(synth.app)
    problems = [(v.rule_name, [r.construct_path for r in v.violating_resources]) for v in report.violations]
    assert report.success and not problems, problems
    assert Annotations.from_stack(synth.stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*")) == []
    assert Annotations.from_stack(synth.stack).find_error("*", Match.any_value()) == []


def test_every_acknowledgment_carries_a_reason(offline, demo):
    for synth in (offline, demo):
        seen = 0
        for value in synth.raw["Resources"].values():
            for rule in value.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                seen += 1
                assert len(rule["reason"]) >= 20, rule
        assert seen


def test_nag_runs_at_synth_and_stops_it(tmp_path):
    """An unacknowledged finding fails app.synth() (what `cdk synth` runs), not just a report."""
    import aws_cdk as cdk
    from aws_cdk import aws_secretsmanager as secretsmanager

    from cachewarm_infra.app import build_app
    from tests.support.infra import INFRA, OFFLINE_CONTEXT

    context = {**json.loads((INFRA / "cdk.json").read_text())["context"], **OFFLINE_CONTEXT}
    app, stack = build_app(cdk.App(context=context, outdir=str(tmp_path)), environ={})
    secretsmanager.Secret(stack, "UnrotatedSecret")  # AwsSolutions-SMG4, not acknowledged
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    nag = [p for p in report["pluginReports"] if p["pluginName"].startswith("AwsSolutions")]
    assert nag and nag[0]["conclusion"] == "failure"
    failed = {(v["ruleName"], c["constructPath"]) for v in nag[0]["violations"] for c in v["violatingConstructs"]}
    assert failed == {("AwsSolutions-SMG4", f"{stack.stack_name}/UnrotatedSecret/Resource")}


# --- the acceptance command, through the real CDK CLI ---------------------------------------------


def test_offline_cli_synth_with_imported_vpc(tmp_path):
    """`cd infra && npx cdk synth -c vpcId=… -c privateSubnetIds=… -c peerSecurityGroupId=…` offline."""
    import os
    import shutil
    import subprocess

    cdk = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    # A dev dependency (package.json): missing means the checkout is not set up, which must fail.
    assert cdk.exists() and shutil.which("node") is not None, "the CDK CLI is missing: run make setup (npm ci)"
    # No credentials and no metadata service: exactly a CI runner without AWS access.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "CDK_"))}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        CDK_DISABLE_VERSION_CHECK="true",
    )
    out = tmp_path / "cdk.out"
    result = subprocess.run(
        [
            str(cdk),
            "synth",
            "--quiet",
            "--output",
            str(out),
            "-c",
            "vpcId=vpc-0123",
            "-c",
            "privateSubnetIds=subnet-0a,subnet-0b",
            "-c",
            "peerSecurityGroupId=sg-0123",
        ],
        cwd=REPO_ROOT / "infra",
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    raw = json.loads((out / "Cachewarm.template.json").read_text())
    assert only(raw, "AWS::ElastiCache::SubnetGroup")[1]["Properties"]["SubnetIds"] == ["subnet-0a", "subnet-0b"]
    _, group = only(raw, "AWS::ElastiCache::ReplicationGroup")
    (redis_sg,) = [get_att_id(ref) for ref in group["Properties"]["SecurityGroupIds"]]
    sources = [rule.get("SourceSecurityGroupId") for rule in ingress_rules(raw, redis_sg)]
    assert "sg-0123" in sources and None not in sources
    _, table = only(raw, "AWS::DynamoDB::Table")
    assert_schema_of_table_create(table["Properties"])
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}

"""Change capture in the CDK app: the table's stream -> the invalidation function -> Redis.

Resources are found by type and by the references between them, never by logical id. The three
shapes are the session fixtures of conftest.py; one more synth checks that context changes the mapping.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachewarm.keys import KeySchema
from cachewarm.settings import ENV_VARS
from cachewarm_infra.config import CONTEXT_KEYS, ConfigError, InfraConfig
from tests.support.infra import get_att_id, ingress_rules, only, resources

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
HANDLER = "cachewarm.change_capture.lambda_handler"
STREAM_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
CHANGE_KEYS = (
    "changeBatchSize",
    "changeBatchWindowSeconds",
    "changeMaxRetryAttempts",
    "changeMaxRecordAgeSeconds",
    "changeIteratorAgeAlarmSeconds",
)


# --- helpers: navigate the template by references ------------------------------------------------




def actions(statement: dict) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else list(value)


def listed(value: object) -> list:
    return value if isinstance(value, list) else [value]


def mapping(raw: dict) -> dict:
    return only(raw, "AWS::Lambda::EventSourceMapping")[1]["Properties"]


def function(raw: dict) -> tuple[str, dict]:
    """The function the stream mapping invokes."""
    function_id = mapping(raw)["FunctionName"]["Ref"]
    return function_id, raw["Resources"][function_id]


def function_statements(raw: dict) -> list[dict]:
    _, fn = function(raw)
    role_id = get_att_id(fn["Properties"]["Role"])
    statements = []
    for policy in resources(raw, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def failure_queue_id(raw: dict) -> str:
    return get_att_id(mapping(raw)["DestinationConfig"]["OnFailure"]["Destination"])


def redis_security_group(raw: dict) -> tuple[str, int]:
    caches = resources(raw, "AWS::ElastiCache::ReplicationGroup") | resources(raw, "AWS::ElastiCache::CacheCluster")
    ((_, cache),) = caches.items()
    props = cache["Properties"]
    groups = props.get("SecurityGroupIds") or props["VpcSecurityGroupIds"]
    (group,) = [get_att_id(ref) for ref in groups]
    return group, props["Port"]



def alarm_on(raw: dict, namespace: str, metric: str) -> dict:
    found = [
        alarm["Properties"]
        for alarm in resources(raw, "AWS::CloudWatch::Alarm").values()
        if (alarm["Properties"].get("Namespace"), alarm["Properties"].get("MetricName")) == (namespace, metric)
    ]
    assert len(found) == 1, f"expected one alarm on {namespace}/{metric}, found {len(found)}"
    return found[0]


def config(**context: object) -> InfraConfig:
    return InfraConfig.from_context(context.get)


# --- the stream and the mapping ------------------------------------------------------------------


def test_table_stream_is_keys_only(offline, demo, created):
    for synth in (offline, demo, created):
        _, table = only(synth.raw, "AWS::DynamoDB::Table")
        assert table["Properties"]["StreamSpecification"] == {"StreamViewType": "KEYS_ONLY"}


@pytest.mark.parametrize("shape", ["offline", "demo", "created"])
def test_one_mapping_from_the_tables_stream_with_the_default_settings(shape, request):
    synth = request.getfixturevalue(shape)
    table_id, _ = only(synth.raw, "AWS::DynamoDB::Table")
    props = mapping(synth.raw)
    assert props["EventSourceArn"] == {"Fn::GetAtt": [table_id, "StreamArn"]}
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["BatchSize"] == 100
    assert props["MaximumBatchingWindowInSeconds"] == 0
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] == 10
    assert props["MaximumRecordAgeInSeconds"] == 3600
    queue_id = failure_queue_id(synth.raw)
    assert synth.raw["Resources"][queue_id]["Type"] == "AWS::SQS::Queue"
    assert props.get("Enabled", True) is True


def test_context_keys_change_the_mapping_and_the_lag_alarm(tmp_path):
    from tests.support.infra import OFFLINE_CONTEXT, synth

    tuned = synth(
        {
            **OFFLINE_CONTEXT,
            "changeBatchSize": "500",
            "changeBatchWindowSeconds": "5",
            "changeMaxRetryAttempts": "3",
            "changeMaxRecordAgeSeconds": "7200",
            "changeIteratorAgeAlarmSeconds": "120",
        },
        tmp_path,
    )
    props = mapping(tuned.raw)
    assert props["BatchSize"] == 500
    assert props["MaximumBatchingWindowInSeconds"] == 5
    assert props["MaximumRetryAttempts"] == 3
    assert props["MaximumRecordAgeInSeconds"] == 7200
    assert alarm_on(tuned.raw, "AWS/Lambda", "IteratorAge")["Threshold"] == 120_000


def test_change_context_defaults_and_typed_values():
    cfg = config()
    assert (
        cfg.change_batch_size,
        cfg.change_batch_window_seconds,
        cfg.change_max_retry_attempts,
        cfg.change_max_record_age_seconds,
        cfg.change_iterator_age_alarm_seconds,
    ) == (100, 0, 10, 3600, 60)
    typed = config(changeBatchSize=1000, changeMaxRetryAttempts=0, changeMaxRecordAgeSeconds=1050)
    assert (typed.change_batch_size, typed.change_max_retry_attempts) == (1000, 0)
    # The least allowed: 900 s TTL + 10 % jitter + a minute for a late fill.
    assert typed.change_max_record_age_seconds == 1050


def test_default_record_age_outlives_a_longer_cache_ttl():
    # A record may only be dropped once every summary it could have made stale has expired.
    assert config(cacheTtlSeconds="7200").change_max_record_age_seconds == 7920 + 60
    # Beyond the stream's 24 h retention, the 24 h are the best there is.
    assert config(cacheTtlSeconds=str(20 * 86400)).change_max_record_age_seconds == 86_400


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"changeBatchSize": "0"}, "changeBatchSize"),
        ({"changeBatchSize": "10001"}, "changeBatchSize"),
        ({"changeBatchSize": "lots"}, "changeBatchSize"),
        ({"changeBatchWindowSeconds": "-1"}, "changeBatchWindowSeconds"),
        ({"changeBatchWindowSeconds": "301"}, "changeBatchWindowSeconds"),
        ({"changeMaxRetryAttempts": "-1"}, "changeMaxRetryAttempts"),  # the service's "forever"
        ({"changeMaxRetryAttempts": "10001"}, "changeMaxRetryAttempts"),
        ({"changeMaxRecordAgeSeconds": "-1"}, "changeMaxRecordAgeSeconds"),  # the service's "forever"
        ({"changeMaxRecordAgeSeconds": "86401"}, "changeMaxRecordAgeSeconds"),  # the stream keeps 24 h
        ({"changeMaxRecordAgeSeconds": "1049"}, "changeMaxRecordAgeSeconds"),  # below 900 s TTL + 10 % + 60 s
        ({"cacheTtlSeconds": "3600", "changeMaxRecordAgeSeconds": "3600"}, "changeMaxRecordAgeSeconds"),
        ({"changeMaxRecordAgeSeconds": "1.5"}, "changeMaxRecordAgeSeconds"),
        ({"changeIteratorAgeAlarmSeconds": "0"}, "changeIteratorAgeAlarmSeconds"),
        ({"changeIteratorAgeAlarmSeconds": "3600"}, "changeIteratorAgeAlarmSeconds"),  # = the record age
    ],
)
def test_bad_change_context_names_the_key(context, key):
    with pytest.raises(ConfigError) as caught:
        config(**context)
    assert caught.value.key == key
    assert f"context {key}=" in str(caught.value)


def test_change_keys_are_declared_and_documented():
    docs = (REPO_ROOT / "docs" / "deploying.md").read_text()
    for key in CHANGE_KEYS:
        assert key in CONTEXT_KEYS
        assert f"`{key}`" in docs, key
    assert "## Change capture" in docs


# --- the function --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["offline", "demo", "created"])
def test_function_runs_the_projects_handler_like_the_queue_depth_function(shape, request):
    synth = request.getfixturevalue(shape)
    _, fn = function(synth.raw)
    props = fn["Properties"]
    assert props["Handler"] == HANDLER
    (queue_depth,) = [
        f
        for f in resources(synth.raw, "AWS::Lambda::Function").values()
        if "QUEUES" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert props["Runtime"] == queue_depth["Properties"]["Runtime"]
    assert props["MemorySize"] == 256
    assert 20 <= props["Timeout"] <= 60
    assert "ReservedConcurrentExecutions" not in props
    # Its own log group, kept as long as the stack's other logs.
    log_group_id = props["LoggingConfig"]["LogGroup"]["Ref"]
    log_group = synth.raw["Resources"][log_group_id]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == 30


@pytest.mark.parametrize("shape", ["offline", "demo", "created"])
def test_function_runs_in_the_private_subnets_with_its_own_group_that_redis_admits(shape, request):
    synth = request.getfixturevalue(shape)
    _, fn = function(synth.raw)
    vpc_config = fn["Properties"]["VpcConfig"]
    subnet_group = only(synth.raw, "AWS::ElastiCache::SubnetGroup")[1]["Properties"]["SubnetIds"]
    assert vpc_config["SubnetIds"] == subnet_group  # the private subnets
    if shape != "created":
        assert vpc_config["SubnetIds"] == ["subnet-0a", "subnet-0b"]
    (group_ref,) = vpc_config["SecurityGroupIds"]
    group_id = get_att_id(group_ref)
    assert synth.raw["Resources"][group_id]["Type"] == "AWS::EC2::SecurityGroup"
    # Its own group: no service and no other function uses it.
    users = [
        f["Properties"]["VpcConfig"]["SecurityGroupIds"]
        for f in resources(synth.raw, "AWS::Lambda::Function").values()
        if "VpcConfig" in f["Properties"]
    ] + [
        s["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]
        for s in resources(synth.raw, "AWS::ECS::Service").values()
    ]
    assert sum(group_ref in groups for groups in users) == 1
    assert ingress_rules(synth.raw, group_id) == []
    redis_group, port = redis_security_group(synth.raw)
    admitting = [
        rule for rule in ingress_rules(synth.raw, redis_group) if rule.get("SourceSecurityGroupId") == group_ref
    ]
    assert len(admitting) == 1
    (rule,) = admitting
    assert rule["IpProtocol"] == "tcp" and rule["FromPort"] == rule["ToPort"] == port


def test_function_environment_matches_the_workers(offline, demo):
    for synth in (offline, demo):
        _, fn = function(synth.raw)
        env = fn["Properties"]["Environment"]["Variables"]
        table_id, _ = only(synth.raw, "AWS::DynamoDB::Table")
        worker = next(
            c
            for t in resources(synth.raw, "AWS::ECS::TaskDefinition").values()
            for c in t["Properties"]["ContainerDefinitions"]
            if c["Name"] == "worker"
        )
        worker_env = {e["Name"]: e["Value"] for e in worker["Environment"]}
        assert env[ENV_VARS["redis_url"]] == worker_env[ENV_VARS["redis_url"]]
        assert env[ENV_VARS["table_name"]] == {"Ref": table_id}
        assert env[ENV_VARS["cache_ttl"]] == worker_env[ENV_VARS["cache_ttl"]] == "900"
        assert ENV_VARS["aws_region"] not in env  # reserved: the Lambda runtime sets it
    # Production: the RBAC cache user's secret, read by the handler at cold start. Demo: no AUTH at all.
    env = function(offline.raw)[1]["Properties"]["Environment"]["Variables"]
    secret_ref = env["REDIS_AUTH_SECRET_ARN"]
    assert offline.raw["Resources"][secret_ref["Ref"]]["Type"] == "AWS::SecretsManager::Secret"
    users = [u["Properties"] for u in resources(offline.raw, "AWS::ElastiCache::User").values()]
    (cache_user,) = [u for u in users if secret_ref["Ref"] in str(u["Passwords"])]  # the cache user's password
    cache_root = KeySchema(prefix="cw").root  # derived, whatever the key schema's version
    assert cache_user["UserName"] == "cache" and cache_user["AccessString"].startswith(f"on ~{cache_root}* ")
    assert "REDIS_AUTH_SECRET_ARN" not in function(demo.raw)[1]["Properties"]["Environment"]["Variables"]


# --- least privilege -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["offline", "demo"])
def test_function_reads_the_stream_and_nothing_of_the_table(shape, request):
    synth = request.getfixturevalue(shape)
    table_id, _ = only(synth.raw, "AWS::DynamoDB::Table")
    statements = function_statements(synth.raw)
    dynamodb = [s for s in statements if any(a.startswith("dynamodb:") for a in actions(s))]
    granted = {a for s in dynamodb for a in actions(s)}
    assert granted == STREAM_ACTIONS | {"dynamodb:ListStreams"}
    for statement in dynamodb:
        assert statement["Effect"] == "Allow"
        resources_ = listed(statement["Resource"])
        if set(actions(statement)) == {"dynamodb:ListStreams"}:
            assert resources_ == ["*"]  # no resource-level permissions; acknowledged below
        else:
            assert set(actions(statement)) <= STREAM_ACTIONS
            assert resources_ == [{"Fn::GetAtt": [table_id, "StreamArn"]}]
    # Nothing anywhere in the function's policies refers to the table itself or its indexes.
    for statement in statements:
        for resource in listed(statement["Resource"]):
            assert resource != {"Fn::GetAtt": [table_id, "Arn"]}, statement
            assert "/index/" not in str(resource), statement


def test_function_may_read_only_the_caches_secret(offline, demo):
    statements = function_statements(offline.raw)
    secrets = [s for s in statements if any(a.startswith("secretsmanager:") for a in actions(s))]
    assert secrets
    assert "secretsmanager:GetSecretValue" in {a for s in secrets for a in actions(s)}
    env = function(offline.raw)[1]["Properties"]["Environment"]["Variables"]
    for statement in secrets:
        assert listed(statement["Resource"]) == [env["REDIS_AUTH_SECRET_ARN"]]
        assert set(actions(statement)) <= {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    # Demo mode has no AUTH secret, so no secret access at all.
    assert not [s for s in function_statements(demo.raw) if any(a.startswith("secretsmanager:") for a in actions(s))]


def test_function_may_only_send_to_its_failure_queue(offline):
    queue_id = failure_queue_id(offline.raw)
    sqs = [s for s in function_statements(offline.raw) if any(a.startswith("sqs:") for a in actions(s))]
    assert {a for s in sqs for a in actions(s)} >= {"sqs:SendMessage"}
    for statement in sqs:
        assert listed(statement["Resource"]) == [{"Fn::GetAtt": [queue_id, "Arn"]}]
    services = {a.split(":")[0] for s in function_statements(offline.raw) for a in actions(s)}
    assert services == {"dynamodb", "secretsmanager", "sqs"}


# --- the failure queue and the alarms --------------------------------------------------------------


def test_failure_queue_is_encrypted_ssl_only_and_keeps_messages_14_days(offline):
    queue_id = failure_queue_id(offline.raw)
    props = offline.raw["Resources"][queue_id]["Properties"]
    assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props
    assert props["MessageRetentionPeriod"] == 14 * 86400
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(offline.raw, "AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
    ]
    denies = [
        s
        for statements in policies
        for s in statements
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert denies, "enforceSSL"


def test_alarms_watch_lag_failures_and_errors(offline):
    function_id, _ = function(offline.raw)
    queue_id = failure_queue_id(offline.raw)

    lag = alarm_on(offline.raw, "AWS/Lambda", "IteratorAge")
    assert lag["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    assert (lag["Statistic"], lag["Period"]) == ("Maximum", 60)
    assert lag["ComparisonOperator"] == "GreaterThanThreshold"
    assert lag["Threshold"] == 60_000  # IteratorAge is in milliseconds

    failed = alarm_on(offline.raw, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert failed["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert failed["ComparisonOperator"] == "GreaterThanThreshold" and failed["Threshold"] == 0
    assert failed["TreatMissingData"] == "notBreaching"

    errors = alarm_on(offline.raw, "AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    assert errors["ComparisonOperator"] == "GreaterThanThreshold" and errors["Threshold"] == 0
    assert errors["TreatMissingData"] == "notBreaching"


def test_outputs_name_the_function_and_the_failure_queue(offline, demo):
    for synth in (offline, demo):
        function_id, _ = function(synth.raw)
        outputs = synth.raw["Outputs"]
        assert outputs["ChangeCaptureFunctionName"]["Value"] == {"Ref": function_id}
        assert outputs["ChangeCaptureFailureQueueUrl"]["Value"] == {"Ref": failure_queue_id(synth.raw)}


# --- the code asset ------------------------------------------------------------------------------


def asset_dir(synth) -> Path:
    """The staged directory that becomes the function's zip (named by the hash in Code.S3Key)."""
    _, fn = function(synth.raw)
    asset_hash = fn["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    # The CLI also records the path in the resource's metadata; an in-process synth does not.
    path = fn.get("Metadata", {}).get("aws:asset:path", f"asset.{asset_hash}")
    assert path == f"asset.{asset_hash}"
    return Path(synth.app.outdir) / path


def test_asset_holds_the_cachewarm_package_and_pure_python_redis(offline):
    asset = asset_dir(offline)
    assert asset.is_dir()
    assert (asset / "redis" / "__init__.py").is_file()
    assert (asset / "cachewarm" / "__init__.py").is_file()
    # Every module of the project's core, the handler's module included once it exists.
    for module in (REPO_ROOT / "cachewarm").rglob("*.py"):
        if "__pycache__" not in module.parts:
            assert (asset / "cachewarm" / module.relative_to(REPO_ROOT / "cachewarm")).is_file(), module
    if (REPO_ROOT / "cachewarm" / "change_capture.py").exists():
        assert (asset / "cachewarm" / "change_capture.py").is_file()
    # Nothing else: no byte code, no hiredis, no other top-level package (boto3 is in the runtime).
    assert sorted(p.name for p in asset.iterdir()) == ["cachewarm", "redis"]
    assert not [p for p in asset.rglob("*") if p.name == "__pycache__" or p.suffix in (".pyc", ".so")]


def test_asset_imports_with_the_standard_library_alone(offline):
    """redis-py and the core import in a bare interpreter with only the asset on the path."""
    import subprocess
    import sys

    asset = asset_dir(offline)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import redis, redis.client, cachewarm.settings, cachewarm.keys;"
        "print(redis.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(asset)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(asset))


def run_bundled_handler(asset: Path, event: dict, env: dict[str, str]) -> dict:
    """Call the asset's ``lambda_handler`` in a fresh interpreter, the asset first on the path.

    The venv's site-packages stay visible for boto3 (the Lambda runtime provides it); the
    project's own ``cachewarm`` and ``redis`` must come from the asset (checked). The handler's AWS
    calls are recorded as the ``lambda`` kind (devstack/aws_calls.py, loaded by path: it imports only
    the standard library and botocore, so nothing of the project comes from outside the asset).
    """
    import subprocess
    import sys

    from devstack import aws_call_log, aws_calls

    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "import importlib.util as u; s = u.spec_from_file_location('aws_calls', sys.argv[3]);"
        "s.loader.exec_module(u.module_from_spec(s));"
        "import redis, cachewarm.change_capture as m;"
        "assert m.__file__.startswith(sys.argv[1]) and redis.__file__.startswith(sys.argv[1]), m.__file__;"
        "print(json.dumps(m.lambda_handler(json.loads(sys.argv[2]), None)))"
    )
    recorded = {**aws_call_log.environ(env), aws_calls.KIND_VAR: "lambda"}
    result = subprocess.run([sys.executable, "-I", "-c", code, str(asset), json.dumps(event), aws_calls.__file__],
                            capture_output=True, text=True, timeout=60, env=recorded)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_bundled_handler_invalidates_on_a_real_redis_and_reports_failures_without_one(offline, redis_server):
    """The asset as Lambda would run it, against the session's private redis-server (database 14)."""
    import os

    import redis

    from cachewarm.keys import KeySchema

    asset = asset_dir(offline)
    _, fn = function(offline.raw)
    assert fn["Properties"]["Handler"] == "cachewarm.change_capture.lambda_handler"
    url = redis_server.url.rsplit("/", 1)[0] + "/14"
    client = redis.Redis.from_url(url)
    key = KeySchema(prefix="lambda").summary("Thai Spot")
    client.set(key, "{}", ex=60)
    event = {"Records": [{
        "eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {"Keys": {"PK": {"S": "USER#amy"}, "SK": {"S": "REST#Thai Spot"}}, "SequenceNumber": "42",
                     "ApproximateCreationDateTime": 1764651600, "SizeBytes": 30, "StreamViewType": "KEYS_ONLY"},
    }]}
    base = {"PATH": os.environ.get("PATH", ""), "CACHE_KEY_PREFIX": "lambda", "TABLE_NAME": "Restaurants"}
    assert run_bundled_handler(asset, event, {**base, "REDIS_URL": url}) == {"batchItemFailures": []}
    assert not client.exists(key)
    closed = "redis://127.0.0.1:1/0"
    assert run_bundled_handler(asset, event, {**base, "REDIS_URL": closed, "REDIS_TIMEOUT_SECONDS": "0.2"}) == {
        "batchItemFailures": [{"itemIdentifier": "42"}]}
    client.flushdb()  # database 14 of the private server, never the shared 6379


# --- cdk-nag -------------------------------------------------------------------------------------


def test_cdk_nag_passes_with_reasoned_acknowledgments(offline):
    """The synth already ran the AwsSolutions pack (a finding fails it); these are the acknowledgments."""
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks().validate_scope(offline.app)
    problems = [(v.rule_name, [r.construct_path for r in v.violating_resources]) for v in report.violations]
    assert report.success and not problems, problems

    def suppressed(resource: dict) -> dict[str, str]:
        rules = resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        return {rule["id"]: rule["reason"] for rule in rules}

    queue = suppressed(offline.raw["Resources"][failure_queue_id(offline.raw)])
    assert "failure destination" in queue["AwsSolutions-SQS3"] or "dead-letter" in queue["AwsSolutions-SQS3"]
    _, fn = function(offline.raw)
    role_id = get_att_id(fn["Properties"]["Role"])
    (policy,) = [
        p for p in resources(offline.raw, "AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert "ListStreams" in suppressed(policy)["AwsSolutions-IAM5[Resource::*]"]
    role = suppressed(offline.raw["Resources"][role_id])
    assert any(rule.startswith("AwsSolutions-IAM4[") for rule in role)

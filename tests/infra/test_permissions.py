"""Permissions derived from behaviour: every AWS call the project's processes make is allowed by the role
that runs them on AWS, and the workers' table grant is exactly what they call.

**Where the calls come from.** The processes the test fixtures start record their AWS API calls
(devstack/aws_calls.py) in ``.run/aws-calls.jsonl`` (``CACHEWARM_AWS_CALL_LOG`` moves it): celery
workers, beat and Flower (tests/support/celery_procs.py), the ``cachewarm`` command
(tests/support/cli.py) and the bundled change-capture handler (tests/infra/test_change_capture.py).
tests/conftest.py starts the log afresh when a session runs the integration or reliability suite, and
runs this module after every other test (``RUNS_AFTER_RECORDING``); run alone, it checks the log of the
last such session. Test code playing "the application" (creating tables, writing items with boto3)
runs in the pytest process and is never recorded. Recorded here as well: two paths the local stack cannot
serve, in-process against moto (S3 loads; the handler's cold start in production mode, Secrets Manager),
and ``cachewarm feed follow`` on the local stack (the integration suite starts it without the recorder).

**Kinds and roles.** worker and cli: the worker task role (one-off ``cachewarm`` commands run from the
worker task definition); beat, flower: their task roles; lambda: the change-capture function's role (its
own calls: the AUTH token at cold start); feed (``cachewarm feed follow``, the local stand-in for the
event source mapping, whose stream reads use the function's role): the same role.

**Local names stand for deployed ones.** Every table a process names is its ``TABLE_NAME``, so the
stack's table (index names kept); every stream is that table's; a secret is the function's
``REDIS_AUTH_SECRET_ARN``; S3 ARNs are kept (bucket names are configuration: ``loadBuckets``).

**The evaluation.** The policies attached to the role (``AWS::IAM::Policy``, customer-managed and inline
policies) with ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``, ``Fn::Select`` and ``Fn::Split``
resolved for a made-up account and region; an explicit Deny wins; ``Action`` and ``Resource`` are IAM
globs (``*``, ``?``; actions ignore case); ``NotAction``/``NotResource`` invert; an Allow with a
``Condition`` does not count (its request context is unknown here). AWS-managed policies (the Lambda
execution policies: logs and network interfaces) are not read.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from cachewarm_infra.config import ConfigError, InfraConfig
from cachewarm_infra.stack import LOAD_BUCKET_ACTIONS, TABLE_ACTIONS, UNGRANTED_TABLE_ACTIONS
from devstack import aws_call_log, aws_calls
from tests.support.infra import OFFLINE_CONTEXT, Synth, synth

#: tests/conftest.py runs this module after every other test: it reads what they recorded.
RUNS_AFTER_RECORDING = True

pytestmark = pytest.mark.slow

ACCOUNT, REGION = "123456789012", "eu-west-1"
STREAM_LABEL = "2025-01-01T00:00:00.000"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
          "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "Cachewarm"}
LOAD_BUCKET = "cachewarm-loads-test"

#: Which role runs each kind of process on AWS.
KIND_ROLES = {
    "worker": "worker", "cli": "worker", "beat": "beat", "flower": "flower",
    "lambda": "change-capture", "feed": "change-capture",
}
#: IAM authorises each part of a transaction as its own action; there is no dynamodb:TransactWriteItems.
TRANSACTION_PARTS = {
    "Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem", "Get": "dynamodb:GetItem",
}
#: S3 operations whose IAM action has another name.
S3_ACTIONS = {
    "HeadObject": "s3:GetObject", "ListObjects": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
}
#: What the feed follower needs only as the local stand-in for the event source mapping.
STAND_IN_ONLY = {
    ("feed", "dynamodb:DescribeTable"): "the follower looks up the table's stream ARN; the template gives it to "
    "the mapping",
}


def iam_action(call: dict[str, str]) -> str:
    """The IAM action that authorises one recorded call."""
    service, operation = call["service"], call["operation"]
    if call.get("part"):
        return TRANSACTION_PARTS[call["part"]]
    if service == "dynamodbstreams":  # the Streams API signs as dynamodb
        return f"dynamodb:{operation}"
    if service == "s3":
        return S3_ACTIONS.get(operation, f"s3:{operation}")
    return f"{service}:{operation}"


def listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


# --- the template, as deployed ---------------------------------------------------------------------


class Deployment:
    """A synthesized template read as if deployed into ACCOUNT and REGION."""

    def __init__(self, raw: dict):
        self.resources: dict[str, dict] = raw["Resources"]
        (self.table_id,) = [key for key, value in self.resources.items() if value["Type"] == "AWS::DynamoDB::Table"]
        self.table_arn = self.get_att(self.table_id, "Arn")
        self.stream_arn = self.get_att(self.table_id, "StreamArn")
        self.function_id = self._change_capture_function()
        variables = self.resources[self.function_id]["Properties"]["Environment"]["Variables"]
        secret = variables.get("REDIS_AUTH_SECRET_ARN")
        self.auth_secret_arn = self.resolve(secret) if secret is not None else "<no AUTH secret in this mode>"

    # CloudFormation's intrinsics
    def ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        resource = self.resources.get(name)
        if resource is None:
            return f"<parameter {name}>"
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::DynamoDB::Table":
            return props.get("TableName", name)
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        return name

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.resources[name]["Type"]
        if kind == "AWS::DynamoDB::Table" and attribute in ("Arn", "StreamArn"):
            table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.ref(name)}"
            return table if attribute == "Arn" else f"{table}/stream/{STREAM_LABEL}"
        arns = {"AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
                "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
                "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"}
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        return f"<{name}.{attribute}>"

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str | int):
            return str(value)
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return self.ref(argument)
            if function == "Fn::GetAtt":
                name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(name, attribute)
            if function == "Fn::Join":
                separator, parts = argument
                return separator.join(self.resolve(parts))
            if function == "Fn::Sub":
                return self._sub(argument)
            if function == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if function == "Fn::Split":
                separator, text = argument
                return self.resolve(text).split(separator)
        raise AssertionError(f"cannot resolve {value!r}")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name in variables:
                return self.resolve(variables[name])
            if "." in name:
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return re.sub(r"\$\{([^}!][^}]*)\}", substitute, text)

    # roles and their statements
    def _change_capture_function(self) -> str:
        (mapping,) = [r for r in self.resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
        return mapping["Properties"]["FunctionName"]["Ref"]

    def role_id(self, name: str) -> str:
        """The role of a task definition's single container (worker, beat, flower) or of the change capture."""
        if name == "change-capture":
            return self.resources[self.function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        for resource in self.resources.values():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::ECS::TaskDefinition" and [
                container["Name"] for container in props["ContainerDefinitions"]
            ] == [name]:
                return props["TaskRoleArn"]["Fn::GetAtt"][0]
        raise AssertionError(f"no role for {name}")

    def statements(self, name: str) -> list[dict]:
        """Every statement of the role's own policies, with their resources resolved."""
        role_id = self.role_id(name)
        found: list[dict] = []
        for resource in self.resources.values():
            props = resource.get("Properties", {})
            if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {"Ref": role_id} in props.get(
                "Roles", []
            ):
                found += listed(props["PolicyDocument"]["Statement"])
        for policy in self.resources[role_id]["Properties"].get("Policies", []):
            found += listed(policy["PolicyDocument"]["Statement"])
        resolved = []
        for statement in found:
            statement = dict(statement)
            for key in ("Resource", "NotResource"):
                if key in statement:
                    statement[key] = listed(self.resolve(statement[key]))
            resolved.append(statement)
        return resolved

    def resource_of(self, call: dict[str, str]) -> str:
        """The deployed resource a recorded call names (``*`` for calls on no resource)."""
        resource = call.get("resource")
        if resource is None:
            return "*"
        if call["service"] == "dynamodb":
            _, _, index = resource.partition("/index/")
            return f"{self.table_arn}/index/{index}" if index else self.table_arn
        if call["service"] == "dynamodbstreams":
            return self.stream_arn
        if call["service"] == "secretsmanager":
            return self.auth_secret_arn
        return resource


# --- IAM's evaluation ------------------------------------------------------------------------------


@cache
def _glob(pattern: str, ignore_case: bool) -> re.Pattern:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body + r"\Z", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _any(patterns: Any, value: str, *, ignore_case: bool) -> bool:
    return any(_glob(str(pattern), ignore_case).match(value) for pattern in listed(patterns))


def applies(statement: dict, action: str, resource: str) -> bool:
    if "Action" in statement:
        if not _any(statement["Action"], action, ignore_case=True):
            return False
    elif _any(statement["NotAction"], action, ignore_case=True):
        return False
    if "Resource" in statement:
        return _any(statement["Resource"], resource, ignore_case=False)
    return not _any(statement["NotResource"], resource, ignore_case=False)


def decision(statements: list[dict], action: str, resource: str) -> str:
    """``allow``, ``explicit deny`` or ``implicit deny`` (a Deny counts even with a condition; an Allow not)."""
    if any(s["Effect"] == "Deny" and applies(s, action, resource) for s in statements):
        return "explicit deny"
    if any(s["Effect"] == "Allow" and "Condition" not in s and applies(s, action, resource) for s in statements):
        return "allow"
    return "implicit deny"


def needs(deployment: Deployment, calls: list[dict]) -> dict[tuple[str, str, str], set[str]]:
    """(kind, IAM action, deployed resource) -> the tasks or commands that made such a call."""
    found: dict[tuple[str, str, str], set[str]] = {}
    for call in calls:
        key = (call["kind"], iam_action(call), deployment.resource_of(call))
        found.setdefault(key, set()).add(call.get("via") or "?")
    return found


def problems(deployment: Deployment, calls: list[dict]) -> list[str]:
    """Every recorded call its role does not allow (unless documented), and every documented refusal it allows."""
    found = []
    for (kind, action, resource), vias in sorted(needs(deployment, calls).items()):
        role = KIND_ROLES[kind]
        verdict = decision(deployment.statements(role), action, resource)
        reason = UNGRANTED_TABLE_ACTIONS.get(action) or STAND_IN_ONLY.get((kind, action))
        where = f"{kind} {action} on {resource} (via {', '.join(sorted(vias))})"
        if verdict != "allow" and reason is None:
            found.append(f"{where}: {verdict} by the {role} role")
        elif verdict == "allow" and reason is not None:
            found.append(f"{where}: documented as not granted ({reason}) but the {role} role allows it")
    return found


# --- the recording -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded() -> list[dict]:
    path = aws_call_log.recorded_log()
    try:
        return aws_call_log.read(path)
    except FileNotFoundError:
        pytest.fail(f"no AWS call log at {path}: run the integration suite first (make test runs it before this)")


@pytest.fixture(scope="module")
def calls(recorded) -> list[dict]:
    return [line for line in recorded if "service" in line]


@pytest.fixture(scope="module")
def deployed(offline) -> Deployment:
    return Deployment(offline.raw)


def summary(deployment: Deployment, calls: list[dict]) -> str:
    lines = []
    for kind in sorted({call["kind"] for call in calls}):
        actions = sorted({iam_action(call) for call in calls if call["kind"] == kind})
        lines.append(f"{kind}: {', '.join(actions)}")
    return "\n".join(lines)


def test_the_log_holds_calls_of_the_workers_and_the_command(recorded, calls, deployed):
    started = {line["kind"] for line in recorded if line.get("event") == "start"}
    called = {call["kind"] for call in calls}
    assert {"worker", "cli"} <= called, (
        f"the log {aws_call_log.recorded_log()} has no calls of {sorted({'worker', 'cli'} - called)} "
        f"(processes recorded: {sorted(started)}): run the integration suite first"
    )
    print("recorded AWS calls per kind (IAM actions):\n" + summary(deployed, calls))


def test_every_recorded_call_is_allowed_by_the_role_of_its_process(deployed, calls):
    found = problems(deployed, calls)
    assert not found, "calls the deployed roles would refuse:\n" + "\n".join(found)


def test_the_workers_table_grant_is_what_the_workers_and_the_command_call(deployed, calls):
    """Derived, not kept by hand: the worker role's table actions are exactly the called ones that are granted."""
    called = {iam_action(call) for call in calls
              if call["kind"] in ("worker", "cli") and call["service"] == "dynamodb"}
    granted = {
        action
        for statement in deployed.statements("worker")
        if statement["Effect"] == "Allow" and deployed.table_arn in statement.get("Resource", [])
        for action in listed(statement["Action"])
    }
    assert granted == set(TABLE_ACTIONS)
    unused = granted - called
    missing = called - granted - set(UNGRANTED_TABLE_ACTIONS)
    assert not unused, f"granted to the worker role but never called: {sorted(unused)}"
    assert not missing, f"called by the workers or the command but not granted: {sorted(missing)}"


def test_documented_refusals_are_called_and_explained(calls):
    called = {iam_action(call) for call in calls}
    for action, reason in UNGRANTED_TABLE_ACTIONS.items():
        assert action in called, f"{action} is documented as called but not granted; nothing calls it any more"
        assert len(reason) > 40, action


def test_dropping_a_grant_is_caught(deployed, calls):
    """The check has teeth: the worker role without dynamodb:Query refuses the recorded summary reads."""
    statements = deployed.statements("worker")
    without_query = [
        {**s, "Action": [a for a in listed(s["Action"]) if a != "dynamodb:Query"]} if "Action" in s else s
        for s in statements
    ]
    queries = [c for c in calls if c["kind"] in ("worker", "cli") and iam_action(c) == "dynamodb:Query"]
    assert queries
    for call in queries:
        resource = deployed.resource_of(call)
        assert decision(statements, "dynamodb:Query", resource) == "allow"
        assert decision(without_query, "dynamodb:Query", resource) == "implicit deny"


# --- the evaluator itself ----------------------------------------------------------------------------


def test_the_evaluator_follows_iam():
    table = "arn:aws:dynamodb:eu-west-1:1:table/T"
    statements = [
        {"Effect": "Allow", "Action": "dynamodb:Get*", "Resource": [table, f"{table}/index/*"]},
        {"Effect": "Allow", "Action": "DynamoDB:query", "Resource": f"{table}/index/GSI?"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceAccount": "1"}}},
        {"Effect": "Allow", "NotAction": "dynamodb:*", "NotResource": "arn:aws:sqs:*"},
        {"Effect": "Deny", "Action": "*", "Resource": f"{table}/index/Secret"},
    ]
    assert decision(statements, "dynamodb:GetItem", table) == "allow"
    assert decision(statements, "dynamodb:GetItem", f"{table}/index/GSI1") == "allow"
    assert decision(statements, "dynamodb:Query", f"{table}/index/GSI1") == "allow"
    assert decision(statements, "dynamodb:Query", table) == "implicit deny"
    assert decision(statements, "dynamodb:Query", f"{table}/index/GSI12") == "implicit deny"
    assert decision(statements, "dynamodb:GetItem", f"{table}/index/Secret") == "explicit deny"
    assert decision(statements, "dynamodb:PutItem", "arn:aws:dynamodb:eu-west-1:1:table/T2") == "implicit deny"
    assert decision(statements, "sqs:SendMessage", "arn:aws:sqs:eu-west-1:1:q") == "implicit deny"
    assert decision(statements, "sns:Publish", "arn:aws:sns:eu-west-1:1:t") == "allow"
    # An Allow with a condition is not counted; ListStreams-style calls name no resource ("*").
    assert decision(statements[:3], "s3:GetObject", "arn:aws:s3:::b/k") == "implicit deny"
    assert decision([{"Effect": "Allow", "Action": "dynamodb:ListStreams", "Resource": "*"}],
                    "dynamodb:ListStreams", "*") == "allow"
    assert decision([{"Effect": "Allow", "Action": "dynamodb:ListStreams", "Resource": table}],
                    "dynamodb:ListStreams", "*") == "implicit deny"


def test_the_template_resolves_to_arns(deployed):
    assert deployed.table_arn == f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Restaurants"
    assert deployed.stream_arn.startswith(deployed.table_arn + "/stream/")
    worker = deployed.statements("worker")
    assert any(f"{deployed.table_arn}/index/*" in s.get("Resource", []) for s in worker)
    assert deployed.auth_secret_arn.startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:")
    assert iam_action({"service": "dynamodb", "operation": "TransactWriteItems", "part": "Put"}) == "dynamodb:PutItem"
    assert iam_action({"service": "dynamodbstreams", "operation": "GetRecords"}) == "dynamodb:GetRecords"
    assert iam_action({"service": "s3", "operation": "HeadObject"}) == "s3:GetObject"


# --- paths the local stack cannot serve: recorded in-process against moto ------------------------------


@pytest.fixture
def on_moto() -> Iterator[None]:
    """A clean environment (no endpoint overrides: moto answers AWS's own) inside ``mock_aws``."""
    from moto import mock_aws

    from devstack.private import use_environ

    env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "TABLE_NAME": "Restaurants",
           "REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_TIMEOUT_SECONDS": "0.2"}
    with use_environ(env), mock_aws():
        yield


def test_the_change_capture_handler_reads_only_its_secret_at_cold_start(on_moto, deployed):
    """Production mode: the handler completes REDIS_URL with the AUTH token from Secrets Manager, once."""
    import boto3

    from cachewarm import change_capture
    from devstack.private import use_environ

    arn = boto3.client("secretsmanager").create_secret(Name="redis-auth", SecretString="t0ken")["ARN"]
    change_capture._lambda_engine.cache_clear()
    try:
        with use_environ({**os.environ, "REDIS_AUTH_SECRET_ARN": arn}), aws_calls.recording("lambda") as lam:
            assert change_capture.lambda_handler({"Records": []}, None) == {"batchItemFailures": []}
            change_capture.lambda_handler({"Records": []}, None)  # warm: no second read
    finally:
        change_capture._lambda_engine.cache_clear()
    assert lam.calls == [{"kind": "lambda", "service": "secretsmanager", "operation": "GetSecretValue",
                          "resource": arn}]
    assert problems(deployed, lam.calls) == []
    # What the function's role allows beyond the mapping's stream and failure-queue grants: this read alone.
    own = [s for s in deployed.statements("change-capture") if not any(
        str(a).startswith(("dynamodb:", "sqs:")) for a in listed(s.get("Action", [])))]
    assert [listed(s["Action"]) for s in own] == [["secretsmanager:GetSecretValue"]]
    assert [s["Resource"] for s in own] == [[deployed.auth_secret_arn]]


def test_the_feed_followers_stream_reads_are_what_the_mapping_is_granted(stack_env, table, deployed, tmp_path):
    """``cachewarm feed follow``, recorded on the local stack: its Streams calls stand for the mapping's."""
    import subprocess

    from tests.support.cli import cli_command
    from tests.support.items import put_items, restaurant
    from tests.support.waiting import wait_until

    log = tmp_path / "feed.jsonl"
    follower = subprocess.Popen(cli_command("feed", "follow"), env=aws_call_log.environ(stack_env, log),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: log.exists() and "GetShardIterator" in log.read_text(), 30, "the follower to start")
        put_items(table, [restaurant("Feed Spot")])
        wait_until(lambda: '"GetRecords"' in log.read_text(), 30, "the follower to read records")
    finally:
        follower.terminate()
        follower.communicate(timeout=20)
    feed = [call for call in aws_call_log.read(log) if "service" in call]
    assert {call["kind"] for call in feed} == {"feed"}
    assert {iam_action(call) for call in feed} <= {
        "dynamodb:DescribeTable", "dynamodb:ListStreams", "dynamodb:DescribeStream", "dynamodb:GetShardIterator",
        "dynamodb:GetRecords"}
    assert all(call.get("resource", "").startswith("arn:aws:dynamodb:") for call in feed
               if call["service"] == "dynamodbstreams" and call["operation"] != "ListStreams")
    assert problems(deployed, feed) == []


@pytest.fixture(scope="module")
def with_load_bucket(tmp_path_factory) -> Synth:
    """The offline shape with one load bucket."""
    return synth({**OFFLINE_CONTEXT, "loadBuckets": LOAD_BUCKET}, tmp_path_factory.mktemp("cdk-load-bucket"))


def _load_file() -> bytes:
    from tests.support.items import restaurant, review

    items = [restaurant("S3 Spot"), *(review("S3 Spot", f"{i:08d}") for i in range(5))]
    return "".join(json.dumps(item) + "\n" for item in items).encode()


def test_s3_loads_need_get_object_on_the_load_buckets_only(on_moto, with_load_bucket, offline):
    """What ``cachewarm load s3://...`` checks before it enqueues, and what bulk_load and load_chunk read."""
    import boto3

    from cachewarm import service
    from cachewarm.settings import get_settings
    from loaders.pipeline import load_range
    from loaders.reader import open_source
    from workers.fanout import make_plan

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=LOAD_BUCKET)
    s3.put_object(Bucket=LOAD_BUCKET, Key="in/items.jsonl", Body=_load_file())
    s3.put_object(Bucket=LOAD_BUCKET, Key="in/items.jsonl.gz", Body=gzip.compress(_load_file()))
    settings = get_settings()
    service.repository(settings).create_table(wait=True)  # the stack's table

    recorded = []
    for key in ("in/items.jsonl", "in/items.jsonl.gz"):
        uri = f"s3://{LOAD_BUCKET}/{key}"
        with aws_calls.recording("cli") as cli:
            assert open_source(uri, region=settings.aws_region).size > 0
        with aws_calls.recording("worker") as worker:
            plan = make_plan(uri, settings=settings, chunk_lines=2)
            for chunk in plan["chunks"]:
                report = load_range(uri, start=chunk["start"], end=chunk["end"], first_line=chunk["first_line"],
                                    settings=settings, invalidate=False)
                assert report.rejected == 0
        recorded += cli.calls + worker.calls
    s3_calls = [call for call in recorded if call["service"] == "s3"]
    assert {iam_action(call) for call in s3_calls} == set(LOAD_BUCKET_ACTIONS) == {"s3:GetObject"}
    assert {call["kind"] for call in s3_calls} == {"cli", "worker"}

    assert problems(Deployment(with_load_bucket.raw), recorded) == []
    # Without the bucket in loadBuckets, the same reads are refused.
    refused = problems(Deployment(offline.raw), s3_calls)
    assert refused and all("implicit deny by the worker role" in line for line in refused)


def test_load_buckets_are_granted_to_the_worker_role_only(with_load_bucket, offline):
    loaded = Deployment(with_load_bucket.raw)
    (statement,) = [s for s in loaded.statements("worker") if any(a.startswith("s3:") for a in listed(s["Action"]))]
    assert listed(statement["Action"]) == list(LOAD_BUCKET_ACTIONS)
    assert statement["Resource"] == [f"arn:aws:s3:::{LOAD_BUCKET}/*"]
    assert "Condition" not in statement
    for role in ("beat", "flower", "change-capture"):
        assert not [s for s in loaded.statements(role) if any(a.startswith("s3:") for a in listed(s["Action"]))]
    default = Deployment(offline.raw)
    for role in ("worker", "beat", "flower", "change-capture"):
        assert not [s for s in default.statements(role) if any(a.startswith("s3:") for a in listed(s["Action"]))]


def test_load_buckets_context():
    def config(**context: object) -> InfraConfig:
        return InfraConfig.from_context(context.get)

    assert config().load_buckets == ()
    assert config(loadBuckets="a-loads, b.loads,a-loads").load_buckets == ("a-loads", "b.loads")
    assert config(loadBuckets=["x-loads"]).load_buckets == ("x-loads",)
    for bad in ("s3://x-loads", "arn:aws:s3:::x-loads", "X-Loads", "ab", "a..b", "x-loads/prefix"):
        with pytest.raises(ConfigError) as caught:
            config(loadBuckets=bad)
        assert caught.value.key == "loadBuckets"


def test_the_permissions_are_documented():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "deploying.md").read_text()
    assert "### Permissions" in docs
    assert "`loadBuckets`" in docs
    for action in UNGRANTED_TABLE_ACTIONS:
        assert action in docs, action

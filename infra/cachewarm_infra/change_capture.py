"""Change capture: the table's stream drives a Lambda function that invalidates cached summaries.

The application team writes the table directly, so the cache learns of writes from the table's
``KEYS_ONLY`` stream: a function in the VPC (the project's own ``cachewarm.change_capture`` handler)
turns each record's keys into a restaurant name and invalidates that summary in Redis.

The function's code is packaged at synth without Docker or a network: a local bundler copies the
repository's ``cachewarm`` package and the pure-Python ``redis`` package (redis-py, from the venv that
runs synth) into the asset. boto3 comes from the Lambda runtime.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cachewarm.settings import ENV_VARS
from cachewarm_infra.lint import (
    AWS_MANAGED_KEYS,
    FUNCTION_ROLE_DEPENDS_ON,
    LAMBDA_ENVIRONMENT_KEYS,
    LOG_GROUP_KEYS,
    ignore_cfn_lint,
    skip_checkov,
)
from cachewarm_infra.nag import acknowledge, acknowledge_lambda_execution_policies

#: The project's handler (cachewarm/change_capture.py); synth does not import it.
HANDLER = "cachewarm.change_capture.lambda_handler"
#: Where the handler finds the cache user's credentials (production mode: the RBAC ``cache`` user's secret,
#: JSON with username and password); it reads the secret at cold start.
AUTH_SECRET_ARN_ENV = ENV_VARS["redis_auth_secret_arn"]

_REPO_ROOT = Path(__file__).resolve().parents[2]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def installed_package(name: str) -> Path:
    """The directory of a package installed in the Python that runs synth (the project's venv)."""
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise RuntimeError(
            f"change capture: the {name!r} package is not installed for {sys.executable}; "
            "synthesize with the project's venv (make setup)"
        )
    return Path(locations[0])


def asset_packages() -> dict[str, Path]:
    """What the asset holds, by top-level name: the project's core, and redis-py (pure Python, no hiredis)."""
    return {"cachewarm": _REPO_ROOT / "cachewarm", "redis": installed_package("redis")}


@jsii.implements(ILocalBundling)
class CopyPackages:
    """Local bundling: copy whole package directories into the asset directory, without byte code.

    CDK calls :meth:`try_bundle` before it would start Docker; returning True means it never does,
    so the bundling image is never pulled (offline synth).
    """

    def __init__(self, packages: Mapping[str, Path]) -> None:
        self.packages = dict(packages)

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        for name, source in self.packages.items():
            shutil.copytree(source, Path(output_dir) / name, ignore=_IGNORE, dirs_exist_ok=True)
        return True


def code() -> lambda_.Code:
    """The function's code: ``cachewarm/`` and ``redis/`` at the root of the zip.

    The asset's hash is that of the bundled output, so a change to either package deploys new code,
    and the rest of the repository (venv, node_modules) is never fingerprinted.
    """
    return lambda_.Code.from_asset(
        str(_REPO_ROOT),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(image=DockerImage.from_registry("unused"), local=CopyPackages(asset_packages())),
    )


class ChangeCapture(Construct):
    """The invalidation function, its failure queue and its alarms.

    The stack connects it: :meth:`event_source` is the stream mapping (``function.add_event_source``
    grants the stream actions and SendMessage on the failure queue), and the cache admits
    ``security_group``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        environment: Mapping[str, str],
        auth_secret_arn: str | None = None,
        batch_size: int = 100,
        batch_window_seconds: int = 0,
        max_retry_attempts: int = 10,
        max_record_age_seconds: int = 3600,
        iterator_age_alarm_seconds: int = 60,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        self._batch_size = batch_size
        self._batch_window = Duration.seconds(batch_window_seconds)
        self._max_retry_attempts = max_retry_attempts
        self._max_record_age = Duration.seconds(max_record_age_seconds)

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="cachewarm change-capture function: outbound to Redis and Secrets Manager",
            allow_all_outbound=True,
        )
        self.failure_queue = sqs.Queue(
            self,
            "FailureQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.failure_queue.node.default_child,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter (on-failure) destination of the change-capture stream "
            "mapping; its messages are read by operators, never redelivered to a consumer.",
        )
        skip_checkov(
            self.failure_queue,
            "CKV_AWS_27",
            "The queue is encrypted at rest with SSE-SQS (QueueEncryption.SQS_MANAGED, SqsManagedSseEnabled), which "
            f"CKV_AWS_27 does not recognise (it looks for KmsMasterKeyId only). {AWS_MANAGED_KEYS}",
        )

        variables = dict(environment)
        if auth_secret_arn:
            variables[AUTH_SECRET_ARN_ENV] = auth_secret_arn
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Invalidates cached summaries of the restaurants named by the table's stream records",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler=HANDLER,
            code=code(),
            timeout=Duration.seconds(30),
            memory_size=256,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            environment=variables,
            log_group=self.log_group,
        )
        acknowledge_lambda_execution_policies(self.function)
        self._acknowledge_findings()

        # Lag: IteratorAge is the age of the last record of each batch when it reaches the function
        # (milliseconds). Missing data means no records arrived, which is not lag.
        self.iterator_age_alarm = cloudwatch.Alarm(
            self,
            "IteratorAgeAlarm",
            alarm_description=(
                f"Change capture is more than {iterator_age_alarm_seconds} s behind the table's writes: "
                "cached summaries stay stale for that long"
            ),
            metric=self.function.metric("IteratorAge", statistic="Maximum", period=Duration.minutes(1)),
            threshold=iterator_age_alarm_seconds * 1000,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.failure_alarm = cloudwatch.Alarm(
            self,
            "FailureQueueAlarm",
            alarm_description=(
                "Change-capture batches were given up (retries or record age exhausted): see "
                "docs/deploying.md, Change capture"
            ),
            metric=self.failure_queue.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=Duration.minutes(1)
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.errors_alarm = cloudwatch.Alarm(
            self,
            "ErrorsAlarm",
            alarm_description="The change-capture function failed (its batch is retried, then bisected)",
            metric=self.function.metric_errors(statistic="Sum", period=Duration.minutes(1)),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _acknowledge_findings(self) -> None:
        """cfn-lint's and checkov's findings on the function and its log group (see cachewarm_infra.lint)."""
        ignore_cfn_lint(self.function, "W3005", FUNCTION_ROLE_DEPENDS_ON)
        skip_checkov(
            self.function,
            "CKV_AWS_116",
            "The stream's event source mapping invokes the function synchronously, and a function's dead-letter "
            "queue only receives failed asynchronous invocations; batches the mapping gives up on go to its own "
            "on-failure destination, the failure queue (alarmed).",
        )
        skip_checkov(
            self.function,
            "CKV_AWS_115",
            "The stream already bounds concurrency: the mapping runs one batch per shard at a time "
            "(ParallelizationFactor 1). Reserving concurrency would only risk throttling the stream's consumer, "
            "and fails to deploy on accounts at Lambda's minimum unreserved concurrency.",
        )
        skip_checkov(
            self.function,
            "CKV_AWS_173",
            "The variables are REDIS_URL without credentials, the table name, the cache TTL and the AUTH "
            f"secret's ARN. {LAMBDA_ENVIRONMENT_KEYS}",
        )
        skip_checkov(
            self.log_group,
            "CKV_AWS_158",
            "The change-capture function's logs hold record counts and invalidation outcomes, no secrets. "
            f"{LOG_GROUP_KEYS}",
        )

    def event_source(self, table: dynamodb.ITable) -> event_sources.DynamoEventSource:
        """The mapping from ``table``'s stream, for ``function.add_event_source`` (which grants).

        Oldest records first (TRIM_HORIZON), partial batch responses, a failing batch bisected and
        retried a bounded number of times, records past the maximum age dropped, and each given-up
        batch described in the failure queue.
        """
        return event_sources.DynamoEventSource(
            table,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=self._batch_size,
            max_batching_window=self._batch_window,
            report_batch_item_failures=True,
            bisect_batch_on_error=True,
            retry_attempts=self._max_retry_attempts,
            max_record_age=self._max_record_age,
            on_failure=event_sources.SqsDlq(self.failure_queue),
        )

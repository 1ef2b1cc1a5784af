"""A per-minute Lambda that publishes the Celery queue depth, which the workers scale on."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cachewarm_infra.lint import (
    FUNCTION_ROLE_DEPENDS_ON,
    LAMBDA_ENVIRONMENT_KEYS,
    LOG_GROUP_KEYS,
    ignore_cfn_lint,
    skip_checkov,
)
from cachewarm_infra.nag import acknowledge_lambda_execution_policies

METRIC_NAMESPACE = "Cachewarm"
METRIC_NAME = "QueueDepth"
#: workers/config.py QUEUES; tests/infra checks that the two agree.
DEFAULT_QUEUES = ("warm", "maintenance", "load", "bench")

_CODE = Path(__file__).parent / "queue_depth"


class QueueDepthMetric(Construct):
    """``Cachewarm/QueueDepth{Stack=<name>}`` (plus one series per queue), published every minute.

    ElastiCache has no per-list metric, so a small function in the VPC reads ``LLEN`` of each Celery
    queue (including kombu's priority lists) and calls ``PutMetricData``. It uses the workers'
    security group so that the cache admits it without another ingress rule.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        redis_host: str,
        redis_port: int,
        redis_tls: bool,
        stack_name: str,
        queues: tuple[str, ...] = DEFAULT_QUEUES,
        auth_secret_arn: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        environment = {
            "REDIS_HOST": redis_host,
            "REDIS_PORT": str(redis_port),
            "REDIS_TLS": "true" if redis_tls else "false",
            "QUEUES": ",".join(queues),
            "METRIC_NAMESPACE": METRIC_NAMESPACE,
            "STACK_NAME": stack_name,
        }
        if auth_secret_arn:
            environment["REDIS_AUTH_SECRET_ARN"] = auth_secret_arn
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Publishes the Celery queue depth (Redis LLEN) to CloudWatch",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_asset(str(_CODE), exclude=["__pycache__", "*.pyc"]),
            timeout=Duration.seconds(20),
            memory_size=128,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            environment=environment,
            log_group=self.log_group,
        )
        events.Rule(
            self,
            "EveryMinute",
            description="Publish the Celery queue depth every minute",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        self.metric = cloudwatch.Metric(
            namespace=METRIC_NAMESPACE,
            metric_name=METRIC_NAME,
            dimensions_map={"Stack": stack_name},
            statistic="Maximum",
            period=Duration.minutes(1),
        )
        acknowledge_lambda_execution_policies(self.function)
        self._acknowledge_findings()

    def _acknowledge_findings(self) -> None:
        """cfn-lint's and checkov's findings on the function and its log group (see cachewarm_infra.lint)."""
        ignore_cfn_lint(self.function, "W3005", FUNCTION_ROLE_DEPENDS_ON)
        skip_checkov(
            self.function,
            "CKV_AWS_116",
            "EventBridge invokes the function asynchronously every minute (the rule's target does not retry): a "
            "failed run is superseded by the next minute's, so a dead-letter queue would only collect stale schedule "
            "events. Failures show in the function's Errors metric and its logs.",
        )
        skip_checkov(
            self.function,
            "CKV_AWS_115",
            "One short run a minute needs one concurrent execution; reserving concurrency would take it from the "
            "account's unreserved pool (and fails to deploy on accounts at Lambda's minimum) for no gain.",
        )
        skip_checkov(
            self.function,
            "CKV_AWS_173",
            "The variables are the Redis host, port and TLS flag, the AUTH secret's ARN, queue names, metric "
            f"namespace and stack name. {LAMBDA_ENVIRONMENT_KEYS}",
        )
        skip_checkov(
            self.log_group,
            "CKV_AWS_158",
            "The queue-depth function's logs hold Lambda's invocation reports and errors, no secrets. "
            f"{LOG_GROUP_KEYS}",
        )

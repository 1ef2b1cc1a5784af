"""The one stack: composes the constructs, and is the only place that grants or opens anything."""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import CfnOutput, Fn, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from cachewarm.settings import ENV_VARS, SPECS
from cachewarm_infra.caches import build_caches
from cachewarm_infra.change_capture import ChangeCapture
from cachewarm_infra.config import InfraConfig
from cachewarm_infra.exporter import ExporterService
from cachewarm_infra.nag import acknowledge
from cachewarm_infra.network import Network
from cachewarm_infra.queue_metrics import QueueDepthMetric
from cachewarm_infra.table import RestaurantsTable
from cachewarm_infra.workers import WorkerServices

#: The repository root: the Docker build context (Dockerfile and .dockerignore live there).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: What the workers and one-off ``cachewarm`` commands (run from the worker task definition) do on the
#: table and its index, exactly as the integration suite records it (devstack/aws_calls.py;
#: tests/infra/test_permissions.py fails on a recorded call that is not granted and on a grant nothing
#: calls): read summaries (Query on GSI1), read versions and benchmark runs (GetItem), write reviews
#: (a TransactWriteItems of a Put and an Update, authorised as PutItem and UpdateItem), benchmark runs
#: (PutItem) and loads (BatchWriteItem, with PutItem to isolate a rejected item), count and sample
#: (Scan), and check the table (DescribeTable).
TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:DescribeTable",
)

#: Table actions the code can call that the stack does not grant, on purpose, with the reason.
UNGRANTED_TABLE_ACTIONS = {
    "dynamodb:CreateTable": "the stack owns the table: `cachewarm table create`, `stack up`, `demo` and "
    "`load --create-table` create the local stack's table and are not for AWS",
    "dynamodb:DeleteTable": "the stack owns the table (removalPolicy decides its fate): `cachewarm table delete` "
    "is for the local stack",
}

#: What loads from S3 call (loaders.reader: HeadObject and ranged GetObject, both authorised by
#: s3:GetObject) on the objects of the ``loadBuckets`` buckets. No s3:ListBucket: the reader never lists.
LOAD_BUCKET_ACTIONS = ("s3:GetObject",)


#: Real resource ids carry 8 or 17 hex digits; CloudFormation's own validator rejects anything else.
_CANONICAL_ID = re.compile(r"^(vpc|subnet|sg)-([0-9a-f]{8}|[0-9a-f]{17})$")

#: CloudWatch Logs accepts only these retention periods (days).
_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def _retention(days: int) -> logs.RetentionDays:
    """The shortest allowed retention that keeps logs at least ``days`` days."""
    return _RETENTION[min(allowed for allowed in _RETENTION if allowed >= days)]


class CachewarmStack(Stack):
    """Redis (ElastiCache), the ``Restaurants`` table and the Celery services, wired together.

    ``self.cache`` is the broker's replication group (in ``cacheMode=node`` also the cache); ``self.caches``
    knows the cache of every mode (:mod:`cachewarm_infra.caches`).
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        retention = _retention(config.log_retention_days)
        Tags.of(self).add("project", "cachewarm")
        Tags.of(self).add("cachewarm:mode", config.mode.value)

        self.network = Network(
            self,
            "Network",
            vpc_id=config.vpc_id,
            vpc_name=config.vpc_name,
            private_subnet_ids=config.private_subnet_ids,
            availability_zones=config.availability_zones,
            vpc_cidr=config.vpc_cidr,
            log_retention=retention,
        )
        vpc = self.network.vpc
        subnets = self.network.private_subnets

        # The broker always; the cache too in cacheMode=node, else a serverless or cluster-mode cache.
        self.caches = build_caches(self, config, vpc=vpc, subnet_ids=self.network.private_subnet_ids)
        self.cache = self.caches.broker
        self.table = RestaurantsTable(
            self, "Restaurants", table_name=config.table_name, removal_policy=config.removal_policy
        )

        image = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(REPO_ROOT),
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        # The names are the app's own (cachewarm.settings). The broker and the cache are reached as two
        # RBAC users (cachewarm_infra.acl), on one endpoint or two (cachewarm_infra.caches): the image's
        # entrypoint (infra/docker/entrypoint.sh) splices REDIS_BROKER_USERNAME/PASSWORD into REDIS_URL and
        # REDIS_CACHE_USERNAME/PASSWORD into CACHE_REDIS_URL. The region is also given as
        # AWS_DEFAULT_REGION, the name older AWS SDKs and tools read.
        environment = {
            ENV_VARS["redis_url"]: self.cache.url_without_secret,
            ENV_VARS["table_name"]: self.table.table.table_name,
            ENV_VARS["aws_region"]: self.region,
            str(SPECS["aws_region"].fallback): self.region,
            ENV_VARS["cache_ttl"]: str(config.cache_ttl_seconds),
        }
        # REDIS_URL keeps its place; CACHE_REDIS_URL (and CACHE_REDIS_MODE) follow, as before the cache modes.
        environment.update(self.caches.task_environment())
        secrets = {}
        if self.cache.broker_secret is not None and self.cache.cache_secret is not None:
            for role, secret in (("BROKER", self.cache.broker_secret), ("CACHE", self.cache.cache_secret)):
                for field in ("username", "password"):
                    secrets[f"REDIS_{role}_{field.upper()}"] = ecs.Secret.from_secrets_manager(secret, field)
        self.workers = WorkerServices(
            self,
            "Workers",
            vpc=vpc,
            subnets=subnets,
            image=ecs.ContainerImage.from_docker_image_asset(image),
            environment=environment,
            secrets=secrets,
            worker_min_count=config.worker_min_count,
            worker_max_count=config.worker_max_count,
            worker_cpu=config.worker_cpu,
            worker_memory=config.worker_memory,
            log_retention=retention,
        )
        # The exporter reads the broker as the read-only metrics user (LLEN only), the cache as the cache user.
        exporter_secrets = {**secrets}
        if self.cache.metrics_secret is not None and secrets:
            for field in ("username", "password"):
                exporter_secrets[f"REDIS_BROKER_{field.upper()}"] = ecs.Secret.from_secrets_manager(
                    self.cache.metrics_secret, field)
        self.exporter = ExporterService(
            self, "Exporter", cluster=self.workers.cluster, namespace=self.workers.namespace, subnets=subnets,
            task_security_group=self.workers.security_group, image=ecs.ContainerImage.from_docker_image_asset(image),
            environment=environment, secrets=exporter_secrets, log_group=self.workers.log_group,
        )
        self.queue_depth = QueueDepthMetric(
            self,
            "QueueDepth",
            vpc=vpc,
            subnets=subnets,
            security_group=self.workers.security_group,
            redis_host=self.cache.host,
            redis_port=config.redis_port,
            redis_tls=self.cache.tls,
            stack_name=config.stack_name,
            auth_secret_arn=self.cache.metrics_secret.secret_arn if self.cache.metrics_secret else None,
            log_retention=retention,
        )
        self.workers.scale_on_queue_depth(self.queue_depth.metric)
        # Writes made by anyone (the application team writes the table directly) reach the cache
        # through the table's stream. The function needs no table access: the keys are in the records.
        self.change_capture = ChangeCapture(
            self,
            "ChangeCapture",
            vpc=vpc,
            subnets=subnets,
            environment={
                **self.caches.change_capture_environment(),
                ENV_VARS["table_name"]: self.table.table.table_name,
                ENV_VARS["cache_ttl"]: str(config.cache_ttl_seconds),
            },
            auth_secret_arn=self.cache.cache_secret.secret_arn if self.cache.cache_secret else None,
            batch_size=config.change_batch_size,
            batch_window_seconds=config.change_batch_window_seconds,
            max_retry_attempts=config.change_max_retry_attempts,
            max_record_age_seconds=config.change_max_record_age_seconds,
            iterator_age_alarm_seconds=config.change_iterator_age_alarm_seconds,
            log_retention=retention,
        )

        self._acknowledge_placeholder_ids(config)
        self._connect(config)
        self._grant()
        self._outputs()

    def _acknowledge_placeholder_ids(self, config: InfraConfig) -> None:
        """Let offline synth run with short placeholder ids such as ``vpc-0123``.

        CDK's built-in CloudFormation validation checks id formats. The acknowledgment is added only
        for a kind of id whose context value is not canonical, so a real deployment keeps the check.
        """
        by_rule = {
            "E1151": ("vpcId", [config.vpc_id] if config.vpc_id else []),
            "E1154": ("privateSubnetIds", list(config.private_subnet_ids)),
            "E1150": ("peerSecurityGroupId", list(config.peer_security_group_ids)),
        }
        for rule, (key, ids) in by_rule.items():
            placeholders = [value for value in ids if not _CANONICAL_ID.match(value)]
            if placeholders:
                acknowledge(
                    self,
                    f"CloudFormation-Validate::{rule}",
                    f"context {key} holds placeholder ids ({', '.join(placeholders)}) for offline synth; "
                    "real ids (8 or 17 hex digits) are validated as usual.",
                )

    # --- network access: security groups only, never a CIDR for Redis ----------------------------

    def _connect(self, config: InfraConfig) -> None:
        caches = self.caches
        caches.admit(self.workers.security_group, "cachewarm tasks and the queue-depth function")
        # The function only invalidates cache entries: with a separate broker, it is not admitted there.
        caches.admit(self.change_capture.security_group, "the change-capture (invalidation) function", broker=False)
        for index, group_id in enumerate(config.peer_security_group_ids):
            peer = ec2.SecurityGroup.from_security_group_id(self, f"Peer{index}", group_id, mutable=False)
            caches.admit(peer, f"peer security group {group_id} (context peerSecurityGroupId)")
            self.workers.allow_flower_from(peer, f"peer security group {group_id} (context peerSecurityGroupId)")
            self.exporter.allow_from(peer, f"peer security group {group_id} (context peerSecurityGroupId)")
        if self.network.vpc_cidr is not None:
            self.workers.allow_flower_from(
                ec2.Peer.ipv4(self.network.vpc_cidr), "Flower from inside the VPC (basic auth required)"
            )
            self.exporter.allow_from(ec2.Peer.ipv4(self.network.vpc_cidr), "Prometheus from inside the VPC")

    # --- IAM ----------------------------------------------------------------------------------------

    def _grant(self) -> None:
        table = self.table.table
        worker_role = self.workers.worker_task_role
        table.grant(worker_role, *TABLE_ACTIONS)
        if self.config.load_buckets:
            worker_role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=list(LOAD_BUCKET_ACTIONS),
                    resources=[f"arn:{self.partition}:s3:::{bucket}/*" for bucket in self.config.load_buckets],
                )
            )
        if self.cache.metrics_secret is not None:
            self.cache.metrics_secret.grant_read(self.queue_depth.function)
        self.queue_depth.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "Cachewarm"}},
            )
        )

        worker_policy = self.workers.worker_task_role.node.find_child("DefaultPolicy")
        table_id = self.get_logical_id(table.node.default_child)
        acknowledge(
            worker_policy,
            f"AwsSolutions-IAM5[Resource::<{table_id}.Arn>/index/*]",
            "table.grant() covers the table's indexes with index/*; the table has exactly one index, GSI1, "
            "which the summary reader queries.",
        )
        for bucket in self.config.load_buckets:
            acknowledge(
                worker_policy,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/*]",
                f"Loads read whichever object of the load bucket {bucket} (context loadBuckets) an operator names "
                "(cachewarm load s3://...); GetObject only, no listing and no writes.",
            )
        for task_definition in (
            self.workers.worker_task_definition,
            self.workers.beat_task_definition,
            self.workers.flower_task_definition,
        ):
            role_policy = task_definition.task_role.node.find_child("DefaultPolicy")
            acknowledge(
                role_policy,
                "AwsSolutions-IAM5[Resource::*]",
                "ECS Exec (ssmmessages channels) has no resource-level permissions; it is how operators "
                "run `cachewarm` next to Redis and port-forward Flower.",
            )
            execution_policy = task_definition.obtain_execution_role().node.find_child("DefaultPolicy")
            acknowledge(
                execution_policy,
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken has no resource-level permissions; image pulls themselves are "
                "scoped to the asset repository.",
            )
        self.exporter.acknowledge_execution_role()
        function_policy = self.queue_depth.function.role.node.find_child("DefaultPolicy")
        acknowledge(
            function_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData has no resource-level permissions; the statement is limited to the "
            "Cachewarm namespace by a condition.",
        )
        self._grant_change_capture()

    def _grant_change_capture(self) -> None:
        """The stream mapping and the change-capture function's permissions.

        ``add_event_source`` creates the mapping and grants what it needs: DescribeStream, GetRecords
        and GetShardIterator on the table's stream (ListStreams on ``*``), and SendMessage on the
        failure queue. No table action: the records carry the keys. The function itself calls one
        API, once per cold start: GetSecretValue on the cache user's secret, to complete REDIS_URL
        (``cachewarm.change_capture._secret_token``; tests/infra/test_permissions.py records it).
        """
        capture = self.change_capture
        capture.function.add_event_source(capture.event_source(self.table.table))
        if self.cache.cache_secret is not None:
            capture.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=[self.cache.cache_secret.secret_arn]
                )
            )
        acknowledge(
            capture.function.role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams has no resource-level permissions (the stream grant adds it on *); it only "
            "lists stream ARNs. Reading records is limited to this table's stream.",
        )

    # --- outputs ------------------------------------------------------------------------------------

    def _outputs(self) -> None:
        self.caches.outputs(self)
        CfnOutput(self, "TableName", value=self.table.table.table_name)
        CfnOutput(
            self,
            "FlowerUrl",
            value=self.workers.flower_url,
            description="Flower, inside the VPC only (Cloud Map DNS); basic auth from FlowerSecretArn",
        )
        CfnOutput(self, "FlowerSecretArn", value=self.workers.flower_secret.secret_arn)
        CfnOutput(self, "ExporterUrl", value=self.exporter.url,
                  description="cachewarm exporter's /metrics for Prometheus, inside the VPC only (Cloud Map DNS)")
        CfnOutput(self, "ClusterName", value=self.workers.cluster.cluster_name)
        CfnOutput(self, "WorkerServiceName", value=self.workers.worker_service.service_name)
        CfnOutput(self, "FlowerServiceName", value=self.workers.flower_service.service_name)
        CfnOutput(
            self,
            "WorkerTaskDefinitionArn",
            value=self.workers.worker_task_definition.task_definition_arn,
            description="Run one-off `cachewarm ...` commands with this (aws ecs run-task)",
        )
        CfnOutput(self, "TaskSecurityGroupId", value=self.workers.security_group.security_group_id)
        CfnOutput(self, "PrivateSubnetIds", value=Fn.join(",", self.network.private_subnet_ids))
        CfnOutput(
            self,
            "ChangeCaptureFunctionName",
            value=self.change_capture.function.function_name,
            description="Invalidates cached summaries from the table's stream",
        )
        CfnOutput(
            self,
            "ChangeCaptureFailureQueueUrl",
            value=self.change_capture.failure_queue.queue_url,
            description="Stream batches the change-capture function gave up on (docs/deploying.md)",
        )

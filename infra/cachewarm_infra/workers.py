"""ECS Fargate services for the Celery worker, beat and Flower, all from one image."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_servicediscovery as servicediscovery
from constructs import Construct

from cachewarm.settings import Settings
from cachewarm_infra.lint import AWS_MANAGED_KEYS, LOG_GROUP_KEYS, skip_checkov
from cachewarm_infra.nag import acknowledge

#: The commands are the project's contract (README, docker-compose.yml, the local stack).
WORKER_COMMAND = ["celery", "-A", "workers", "worker", "--loglevel=INFO"]
BEAT_COMMAND = ["celery", "-A", "workers", "beat", "--loglevel=INFO"]
FLOWER_PORT = Settings().flower_port  # the app's default (FLOWER_PORT in cachewarm.settings)
# Flower reads workers/flowerconfig.py from the installed package (no --conf); its port is FLOWER_PORT's default,
# which the port mapping and the health check use too.
FLOWER_COMMAND = ["celery", "-A", "workers", "flower", "--address=0.0.0.0"]
#: Each container's health check: the image's `python -m workers.health ROLE` (docker-compose.yml runs the same).
HEALTH_COMMANDS = {role: ["python", "-m", "workers.health", role] for role in ("worker", "beat", "flower")}
FLOWER_USER = "flower"
NAMESPACE = "cachewarm.internal"

_ENV_REASON = (
    "Only non-secret settings (table name, region, Redis URLs without credentials, TTL) are plain "
    "environment variables; the Redis users' credentials and the Flower password come from Secrets Manager."
)


class WorkerServices(Construct):
    """An ECS cluster running three services from one image.

    * ``worker``: ``celery -A workers worker``; scales between ``worker_min_count`` and
      ``worker_max_count`` (see :meth:`scale_on_queue_depth`).
    * ``beat``: exactly one task (redbeat also holds a lock in Redis, so an overlap during a
      deployment would be harmless, but the service never starts a second one).
    * ``flower``: one task with no public IP, registered in the private DNS namespace
      ``cachewarm.internal``, protected by basic auth and read-only (``FLOWER_READ_ONLY``, from
      ``flower_read_only``). Its port is closed until :meth:`allow_flower_from` opens it to a peer.

    Every container has a health check (:data:`HEALTH_COMMANDS`, see ``workers/health.py``): the worker's and
    beat's liveness files, Flower's ``/healthcheck``. ECS replaces a task whose check fails ``retries`` times
    in a row after the start period; the deployment circuit breaker counts tasks that never become healthy.

    All tasks share ``security_group`` (the one the cache admits). ``worker_task_role`` is the role
    the stack grants table access to; beat and Flower get no data-plane permissions.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        image: ecs.ContainerImage,
        environment: Mapping[str, str],
        secrets: Mapping[str, ecs.Secret],
        worker_min_count: int = 1,
        worker_max_count: int = 6,
        worker_cpu: int = 1024,
        worker_memory: int = 2048,
        flower_read_only: bool = True,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        self._image = image
        self.cluster = ecs.Cluster(self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED)
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        skip_checkov(
            self.log_group,
            "CKV_AWS_158",
            "The tasks' logs hold Celery task names, ids and outcomes, no secrets (the AUTH token and the Flower "
            f"password reach the containers as ECS secrets, not as plain variables). {LOG_GROUP_KEYS}",
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="cachewarm tasks (worker, beat, flower): outbound to Redis, DynamoDB and AWS APIs",
            allow_all_outbound=True,
        )
        self.flower_security_group = ec2.SecurityGroup(
            self,
            "FlowerSecurityGroup",
            vpc=vpc,
            description=f"Flower UI on port {FLOWER_PORT}: ingress only from allowed peers inside the VPC",
            allow_all_outbound=False,
        )
        self.flower_secret = secretsmanager.Secret(
            self,
            "FlowerCredentials",
            description="cachewarm Flower basic auth (username and password)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=f'{{"username": "{FLOWER_USER}"}}',
                generate_string_key="password",
                exclude_punctuation=True,
                password_length=32,
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.flower_secret,
            "AwsSolutions-SMG4",
            "The Flower password is read at task start; rotate it by putting a new value and forcing a new "
            "deployment of the flower service (docs/deploying.md). No rotation Lambda is needed.",
        )
        skip_checkov(
            self.flower_secret,
            "CKV_AWS_149",
            "The Flower credentials are encrypted with the AWS-managed key aws/secretsmanager; the flower task's "
            f"execution role is the one reader, in this account only. {AWS_MANAGED_KEYS}",
        )

        common = {"environment": dict(environment), "secrets": dict(secrets)}

        # --- worker -------------------------------------------------------------------------------
        self.worker_task_definition = self._task_definition("Worker", worker_cpu, worker_memory)
        self._container(
            self.worker_task_definition,
            "worker",
            WORKER_COMMAND,
            # Celery's warm shutdown finishes running tasks on SIGTERM; Fargate allows up to 120 s.
            stop_timeout=Duration.seconds(120),
            health_check=self._health_check("worker"),
            **common,
        )
        self.worker_service = self._service(
            "WorkerService",
            self.worker_task_definition,
            # No desired count: a deployment must not reset what autoscaling chose (ECS starts at 1).
            desired_count=None,
            min_healthy_percent=100,
            max_healthy_percent=200,
            security_groups=[self.security_group],
            subnets=subnets,
        )
        self.worker_scaling = self.worker_service.auto_scale_task_count(
            min_capacity=worker_min_count, max_capacity=worker_max_count
        )

        # --- beat ---------------------------------------------------------------------------------
        self.beat_task_definition = self._task_definition("Beat", 256, 512)
        self._container(self.beat_task_definition, "beat", BEAT_COMMAND, health_check=self._health_check("beat"),
                        **common)
        # Stop the old beat before starting the new one: never two schedulers at once.
        self.beat_service = self._service(
            "BeatService",
            self.beat_task_definition,
            desired_count=1,
            min_healthy_percent=0,
            max_healthy_percent=100,
            security_groups=[self.security_group],
            subnets=subnets,
        )

        # --- flower -------------------------------------------------------------------------------
        self.namespace = servicediscovery.PrivateDnsNamespace(
            self, "Namespace", name=NAMESPACE, vpc=vpc, description="cachewarm internal services"
        )
        self.flower_task_definition = self._task_definition("Flower", 256, 512)
        flower_secrets = {
            **dict(secrets),
            "FLOWER_USER": ecs.Secret.from_secrets_manager(self.flower_secret, "username"),
            "FLOWER_PASSWORD": ecs.Secret.from_secrets_manager(self.flower_secret, "password"),
        }
        self._container(
            self.flower_task_definition,
            "flower",
            FLOWER_COMMAND,
            # Flower's own variable (workers/flowerconfig.py makes read-only the default): here so that the
            # template says which mode runs, and an operator changes it in one place.
            environment={**dict(environment), "FLOWER_READ_ONLY": "true" if flower_read_only else "false"},
            secrets=flower_secrets,
            port_mappings=[ecs.PortMapping(container_port=FLOWER_PORT, name="flower")],
            health_check=self._health_check("flower"),
        )
        self.flower_service = self._service(
            "FlowerService",
            self.flower_task_definition,
            desired_count=1,
            min_healthy_percent=0,
            max_healthy_percent=100,
            security_groups=[self.security_group, self.flower_security_group],
            subnets=subnets,
            cloud_map_options=ecs.CloudMapOptions(
                name="flower",
                cloud_map_namespace=self.namespace,
                dns_record_type=servicediscovery.DnsRecordType.A,
                dns_ttl=Duration.seconds(30),
            ),
        )
        self.flower_url = f"http://flower.{NAMESPACE}:{FLOWER_PORT}"

    # --- wiring used by the stack -----------------------------------------------------------------

    @property
    def worker_task_role(self) -> iam.IRole:
        return self.worker_task_definition.task_role

    def allow_flower_from(self, peer: ec2.IPeer, description: str) -> None:
        """Open Flower's port to a security group or to the VPC's own CIDR."""
        self.flower_security_group.add_ingress_rule(peer, ec2.Port.tcp(FLOWER_PORT), description)

    def scale_on_queue_depth(self, metric: cloudwatch.IMetric) -> None:
        """Step scaling on the Celery queue depth: out fast, in slowly.

        Scale-out looks at 2 minutes, scale-in waits for 15 minutes of empty queues, because a
        worker that is stopped mid-task gives Celery's warm shutdown only 120 s to finish.
        """
        self.worker_scaling.scale_on_metric(
            "ScaleOutOnQueueDepth",
            metric=metric,
            scaling_steps=[
                appscaling.ScalingInterval(upper=10, change=0),
                appscaling.ScalingInterval(lower=10, upper=100, change=+1),
                appscaling.ScalingInterval(lower=100, change=+3),
            ],
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            evaluation_periods=2,
            cooldown=Duration.minutes(2),
        )
        self.worker_scaling.scale_on_metric(
            "ScaleInOnEmptyQueues",
            metric=metric,
            scaling_steps=[
                appscaling.ScalingInterval(upper=0, change=-1),
                appscaling.ScalingInterval(lower=1, change=0),
            ],
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            evaluation_periods=15,
            cooldown=Duration.minutes(5),
        )

    # --- helpers ----------------------------------------------------------------------------------

    def _task_definition(self, name: str, cpu: int, memory: int) -> ecs.FargateTaskDefinition:
        task_definition = ecs.FargateTaskDefinition(
            self,
            f"{name}TaskDefinition",
            cpu=cpu,
            memory_limit_mib=memory,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        acknowledge(task_definition, "AwsSolutions-ECS2", _ENV_REASON)
        return task_definition

    @staticmethod
    def _health_check(role: str) -> ecs.HealthCheck:
        """``python -m workers.health ROLE`` every 30 s; unhealthy after 3 failures past a 60 s start period.

        The worker's check fails once its liveness file is 60 s old (beat's: 150 s), so ECS replaces a
        worker stuck or cut off from Redis for about 2.5 minutes, not one riding out a Multi-AZ failover.
        """
        return ecs.HealthCheck(
            command=["CMD", *HEALTH_COMMANDS[role]],
            interval=Duration.seconds(30),
            timeout=Duration.seconds(10),
            retries=3,
            start_period=Duration.seconds(60),
        )

    def _container(
        self,
        task_definition: ecs.FargateTaskDefinition,
        name: str,
        command: list[str],
        *,
        environment: dict[str, str],
        secrets: dict[str, ecs.Secret],
        **extra,
    ) -> ecs.ContainerDefinition:
        return task_definition.add_container(
            name,
            image=self._image,
            command=command,
            environment=environment,
            secrets=secrets,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name, log_group=self.log_group),
            essential=True,
            **extra,
        )

    def _service(
        self,
        construct_id: str,
        task_definition: ecs.FargateTaskDefinition,
        *,
        desired_count: int | None,
        min_healthy_percent: int,
        max_healthy_percent: int,
        security_groups: list[ec2.ISecurityGroup],
        subnets: ec2.SubnetSelection,
        cloud_map_options: ecs.CloudMapOptions | None = None,
    ) -> ecs.FargateService:
        return ecs.FargateService(
            self,
            construct_id,
            cluster=self.cluster,
            task_definition=task_definition,
            desired_count=desired_count,
            min_healthy_percent=min_healthy_percent,
            max_healthy_percent=max_healthy_percent,
            security_groups=security_groups,
            vpc_subnets=subnets,
            assign_public_ip=False,
            # ECS Exec: the way to run `cachewarm` next to Redis, and to port-forward Flower.
            enable_execute_command=True,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            platform_version=ecs.FargatePlatformVersion.LATEST,
            cloud_map_options=cloud_map_options,
        )

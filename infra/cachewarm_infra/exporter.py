"""The Prometheus exporter (``cachewarm exporter``) as a small ECS service beside Flower.

A service of its own rather than a sidecar: it needs different Redis users (the read-only ``metrics`` user on
the broker), no ECS Exec and no AWS permission at all, and a Prometheus target should not restart with Flower.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_servicediscovery as servicediscovery
from constructs import Construct

from cachewarm_infra.nag import acknowledge

#: The port of the Procfile and docker-compose.yml (cachewarm_cli.exporter.DEFAULT_PORT; celery-exporter has 9808).
EXPORTER_PORT = 9809
EXPORTER_COMMAND = ["cachewarm", "exporter", "--port", str(EXPORTER_PORT), "--address", "0.0.0.0"]
#: A scrape of itself: the process is up and every Redis call of a scrape returned (it never errors on a
#: Redis outage; cachewarm_cache_up says that), within the check's timeout.
HEALTH_COMMAND = ["python", "-c", f"import urllib.request; urllib.request.urlopen("
                  f"'http://127.0.0.1:{EXPORTER_PORT}/metrics', timeout=8).read()"]


class ExporterService(Construct):
    """One Fargate task serving ``/metrics`` on :data:`EXPORTER_PORT`, registered as ``exporter.<namespace>``.

    ``secrets`` carry the Redis users (``REDIS_BROKER_*``: the ``metrics`` user, ``LLEN`` only;
    ``REDIS_CACHE_*``: the cache user). The port is closed until :meth:`allow_from` opens it to a peer.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: ecs.ICluster,
        namespace: servicediscovery.INamespace,
        subnets: ec2.SubnetSelection,
        task_security_group: ec2.ISecurityGroup,
        image: ecs.ContainerImage,
        environment: Mapping[str, str],
        secrets: Mapping[str, ecs.Secret],
        log_group: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=cluster.vpc,
            description=f"cachewarm exporter on port {EXPORTER_PORT}: ingress only from allowed peers (Prometheus)",
            allow_all_outbound=False,
        )
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=256,
            memory_limit_mib=512,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "Only non-secret settings (Redis URLs without credentials, the key prefix) are plain environment "
            "variables; the Redis users' credentials come from Secrets Manager.",
        )
        self.task_definition.add_container(
            "exporter",
            image=image,
            command=EXPORTER_COMMAND,
            environment=dict(environment),
            secrets=dict(secrets),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="exporter", log_group=log_group),
            essential=True,
            port_mappings=[ecs.PortMapping(container_port=EXPORTER_PORT, name="metrics")],
            # SIGTERM closes the socket at once (cachewarm_cli/exporter.py); no work to finish.
            stop_timeout=Duration.seconds(10),
            health_check=ecs.HealthCheck(
                command=["CMD", *HEALTH_COMMAND],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(10),
                retries=3,
                start_period=Duration.seconds(30),
            ),
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            desired_count=1,
            min_healthy_percent=0,
            max_healthy_percent=200,
            security_groups=[task_security_group, self.security_group],
            vpc_subnets=subnets,
            assign_public_ip=False,
            # Nothing to run next to it: the exporter's task role stays without any permission.
            enable_execute_command=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            platform_version=ecs.FargatePlatformVersion.LATEST,
            cloud_map_options=ecs.CloudMapOptions(
                name="exporter",
                cloud_map_namespace=namespace,
                dns_record_type=servicediscovery.DnsRecordType.A,
                dns_ttl=Duration.seconds(30),
            ),
        )
        self.url = f"http://exporter.{namespace.namespace_name}:{EXPORTER_PORT}/metrics"

    def allow_from(self, peer: ec2.IPeer, description: str) -> None:
        """Open the metrics port to a security group or to the VPC's own CIDR."""
        self.security_group.add_ingress_rule(peer, ec2.Port.tcp(EXPORTER_PORT), description)

    def acknowledge_execution_role(self) -> None:
        """The execution role's one unscoped action (called once the stack has added every grant)."""
        execution_policy = self.task_definition.obtain_execution_role().node.find_child("DefaultPolicy")
        acknowledge(
            execution_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions; image pulls themselves are "
            "scoped to the asset repository.",
        )

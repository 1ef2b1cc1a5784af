"""The cache alone, scaled out: ElastiCache Serverless for Valkey, or a cluster-mode-enabled replication group.

``cacheMode=serverless|cluster`` (:class:`cachewarm_infra.config.CacheMode`). Both are a Redis Cluster to the
client: the app reaches them with ``CACHE_REDIS_MODE=cluster`` and ``CACHE_REDIS_URL=rediss://host:port``
(redis-py's ``RedisCluster``; no database number, a cluster has database 0 only), while the Celery broker stays
on a node-based replication group of its own (:class:`cachewarm_infra.cache.RedisCache`): kombu's Redis
transport cannot use a cluster (kombu issue #2204). The cache's keys are hash-tagged per restaurant name, so a
name's keys share a slot and its scripts never cross slots.

Authentication is RBAC, as on the broker: a user group of the ``default`` user (off) and the ``cache`` user, the
same ElastiCache users the broker's construct creates (:data:`cachewarm_infra.acl.CACHE_GROUP`). RBAC rather than
IAM authentication: IAM tokens last 15 minutes and connections 12 hours, so every client (the workers, the
change-capture function) would need SigV4 token generation and forced reconnects, which the app does not do;
the password-in-Secrets-Manager path is the one the entrypoint and the handler already implement.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Fn, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from constructs import Construct

from cachewarm_infra.cache import DEFAULT_REDIS_PORT, MAXMEMORY_POLICY, parameter_group_family, resource_id
from cachewarm_infra.config import CacheMode
from cachewarm_infra.nag import acknowledge

#: ElastiCache Serverless for Valkey: the major version CloudFormation takes (MajorEngineVersion).
SERVERLESS_MAJOR_VERSION = "8"
#: A serverless cache listens on 6379 (its endpoint) and 6380 (its reader endpoint, for READONLY reads from
#: replicas); neither is configurable, so redisPort does not apply to it.
SERVERLESS_PORTS = (6379, 6380)
#: The parameters of the cluster-on parameter group. cluster-enabled makes it a cluster-mode group.
#: cluster-require-full-coverage "no" (also ElastiCache's default, unlike open-source Redis's "yes"; written
#: here so that the template says it): a shard without a serving primary fails only the keys of its slots,
#: while the other shards keep serving; a cache degrades to DynamoDB reads for those names instead of failing
#: every read. maxmemory-policy as on the broker: every cache key has a TTL, so volatile-lfu evicts the
#: coldest summaries and never a key the app keeps without one.
CLUSTER_PARAMETERS = {
    "cluster-enabled": "yes",
    "cluster-require-full-coverage": "no",
    "maxmemory-policy": MAXMEMORY_POLICY,
}
#: The dimension ElastiCache Serverless publishes its metrics under, with the cache's name as the value.
SERVERLESS_METRIC_DIMENSION = "clusterId"
#: Alarm when a usage limit is this close (a fraction of the maximum).
LIMIT_ALARM_FRACTION = 0.8


class ScaledCache(Construct):
    """A subnet group's subnets, a security group, and the cache: serverless or cluster mode enabled.

    The broker's construct owns the users; ``users`` are the ElastiCache users of this cache's group
    (``default`` and ``cache``). Nothing reaches the cache until :meth:`allow_from` names a security group.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnet_ids: list[str],
        subnet_group_name: str,
        kind: CacheMode,
        users: Sequence[elasticache.CfnUser],
        engine: str = "valkey",
        engine_version: str = "8.0",
        node_type: str = "cache.t4g.small",
        port: int = DEFAULT_REDIS_PORT,
        shards: int = 2,
        replicas: int = 1,
        snapshot_retention_days: int = 3,
        max_ecpu_per_second: int = 50_000,
        max_storage_gb: int = 10,
    ) -> None:
        super().__init__(scope, construct_id)
        if not kind.split:
            raise ValueError("ScaledCache is the cache of cacheMode=serverless or cluster")
        self.kind = kind
        serverless = kind is CacheMode.SERVERLESS
        self.engine = "valkey" if serverless else engine
        self.alarms: list[cloudwatch.Alarm] = []
        self.ports = SERVERLESS_PORTS if serverless else (port, port)
        base = resource_id(Stack.of(self).stack_name)

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"cachewarm cache ({kind.value}, {self.engine}): ingress only from allowed security groups",
            # The cache never opens connections; security groups are stateful, so replies still leave.
            allow_all_outbound=False,
        )
        self.user_group = elasticache.CfnUserGroup(
            self,
            "UserGroup",
            engine=self.engine,
            user_group_id=f"{base}-cache-users",
            user_ids=[user.ref for user in users],
        )
        if serverless:
            self.name = f"{base}-cache"
            self.serverless_cache = elasticache.CfnServerlessCache(
                self,
                "ServerlessCache",
                engine="valkey",
                major_engine_version=SERVERLESS_MAJOR_VERSION,
                serverless_cache_name=self.name,
                description="cachewarm cache (restaurant summaries); the broker is a separate node group",
                # The ceilings bound the bill: past them ElastiCache throttles (ECPU/s) or evicts keys with a
                # TTL (storage) instead of scaling further.
                cache_usage_limits=elasticache.CfnServerlessCache.CacheUsageLimitsProperty(
                    data_storage=elasticache.CfnServerlessCache.DataStorageProperty(unit="GB", maximum=max_storage_gb),
                    ecpu_per_second=elasticache.CfnServerlessCache.ECPUPerSecondProperty(maximum=max_ecpu_per_second),
                ),
                # TLS is always on for serverless caches, and data at rest is always encrypted; no kms_key_id:
                # the stack uses AWS-managed keys throughout (cachewarm_infra.lint.AWS_MANAGED_KEYS).
                security_group_ids=[self.security_group.security_group_id],
                subnet_ids=subnet_ids,
                user_group_id=self.user_group.ref,
                snapshot_retention_limit=snapshot_retention_days,
            )
            self.host = self.serverless_cache.attr_endpoint_address
            self.port: str = self.serverless_cache.attr_endpoint_port
            self._serverless_alarms(max_ecpu_per_second, max_storage_gb)
        else:
            self.name = ""
            self.parameter_group = elasticache.CfnParameterGroup(
                self,
                "ParameterGroup",
                cache_parameter_group_family=parameter_group_family(engine, engine_version),
                description="cachewarm cache, cluster mode enabled: the other shards serve while one is down",
                properties=dict(CLUSTER_PARAMETERS),
            )
            self.replication_group = elasticache.CfnReplicationGroup(
                self,
                "ReplicationGroup",
                replication_group_description="cachewarm cache (cluster mode enabled)",
                engine=engine,
                engine_version=engine_version,
                cache_node_type=node_type,
                cluster_mode="enabled",
                num_node_groups=shards,
                replicas_per_node_group=replicas,
                # Cluster mode needs automatic failover; each shard's replica sits in another AZ.
                automatic_failover_enabled=True,
                multi_az_enabled=True,
                at_rest_encryption_enabled=True,
                transit_encryption_enabled=True,
                # "required" rejects plaintext clients; the mode exists from Redis OSS 7 and Valkey 7.2.
                transit_encryption_mode="required" if int(engine_version.split(".")[0]) >= 7 else None,
                user_group_ids=[self.user_group.ref],
                port=port,
                cache_subnet_group_name=subnet_group_name,
                cache_parameter_group_name=self.parameter_group.ref,
                security_group_ids=[self.security_group.security_group_id],
                snapshot_retention_limit=snapshot_retention_days,
                auto_minor_version_upgrade=True,
            )
            # The configuration endpoint: redis-py's RedisCluster learns every shard from it (CLUSTER SLOTS).
            self.host = self.replication_group.attr_configuration_end_point_address
            self.port = self.replication_group.attr_configuration_end_point_port
            if port == DEFAULT_REDIS_PORT and engine == "redis":
                acknowledge(
                    self.replication_group,
                    "AwsSolutions-AEC5",
                    "6379 is the port every Redis client defaults to; it is configurable (context redisPort), "
                    "and access is controlled by security groups, not by obscurity.",
                )
            acknowledge(
                self.replication_group,
                "AwsSolutions-AEC6",
                "Clients authenticate with RBAC (a user group of the off default user and the cache user, with a "
                "generated password, cachewarm_infra.acl), which replaces the single AUTH token the rule looks for.",
            )

    # --- what the stack wires ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``host:port`` of the serverless endpoint or the configuration endpoint (tokens until deploy)."""
        return Fn.join(":", [self.host, Token.as_string(self.port)])

    @property
    def url_without_secret(self) -> str:
        """``CACHE_REDIS_URL`` without credentials: ``rediss://host:port``, no database (a cluster has db 0 only)."""
        return Fn.join("", ["rediss://", self.host, ":", Token.as_string(self.port)])

    def allow_from(self, peer: ec2.ISecurityGroup, description: str) -> None:
        """Open the cache's port(s) to one security group."""
        low, high = self.ports
        port = ec2.Port.tcp(low) if low == high else ec2.Port.tcp_range(low, high)
        self.security_group.add_ingress_rule(peer, port, description)

    # --- serverless usage alarms --------------------------------------------------------------------------

    def _metric(self, name: str, statistic: str, minutes: int) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/ElastiCache",
            metric_name=name,
            dimensions_map={SERVERLESS_METRIC_DIMENSION: self.name},
            statistic=statistic,
            period=Duration.minutes(minutes),
        )

    def _serverless_alarms(self, max_ecpu_per_second: int, max_storage_gb: int) -> None:
        """Throttling, and each usage limit at 80 %: the limits are hard ceilings the node modes do not have.

        No actions, like the stack's other alarms: subscribe them to your own topic.
        """
        ecpu_per_minute = max_ecpu_per_second * 60
        self.alarms = [
            cloudwatch.Alarm(
                self,
                "ThrottledAlarm",
                alarm_description="The serverless cache throttled commands for 3 minutes: it is scaling slower than "
                "the load grows, or the ECPU/s limit (serverlessMaxEcpuPerSecond) is reached",
                metric=self._metric("ThrottledCmds", "Sum", 1),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=3,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "EcpuLimitAlarm",
                alarm_description=f"The serverless cache used over {LIMIT_ALARM_FRACTION:.0%} of its ECPU/s limit "
                f"({max_ecpu_per_second}/s, serverlessMaxEcpuPerSecond) for 5 minutes; past it, commands are throttled",
                metric=self._metric("ElastiCacheProcessingUnits", "Sum", 1),
                threshold=ecpu_per_minute * LIMIT_ALARM_FRACTION,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=5,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "StorageLimitAlarm",
                alarm_description=f"The serverless cache holds over {LIMIT_ALARM_FRACTION:.0%} of its storage limit "
                f"({max_storage_gb} GB, serverlessMaxStorageGb); past it, keys with a TTL are evicted. Missing data "
                "counts as breaching: the cache reports its size every minute, so silence means the alarm watches "
                "the wrong series (docs/deploying.md, Scaled-out caches)",
                metric=self._metric("BytesUsedForCache", "Maximum", 5),
                # GB as 10^9 bytes, the smaller reading of the limit's unit: the alarm fires early rather than late.
                threshold=max_storage_gb * 1e9 * LIMIT_ALARM_FRACTION,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            ),
        ]

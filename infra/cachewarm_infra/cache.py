"""ElastiCache for Redis: the Celery broker and the summary cache in one instance."""

from __future__ import annotations

from aws_cdk import Fn, RemovalPolicy, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cachewarm_infra.nag import acknowledge

#: The instance holds the broker's queues and the cache. Every cache key has a TTL and the broker's
#: keys do not, so a volatile-* policy can evict only cache entries, never queued tasks. LFU keeps the
#: hot summaries that the warmer works for.
MAXMEMORY_POLICY = "volatile-lfu"

DEFAULT_REDIS_PORT = 6379


class RedisCache(Construct):
    """A subnet group over the private subnets, a security group, a parameter group and Redis.

    * ``demo=True``: the original design's ``CfnCacheCluster`` (one node, no TLS, no AUTH).
    * otherwise: a ``CfnReplicationGroup`` with a primary and ``replicas`` replicas, Multi-AZ and
      automatic failover, encryption at rest and in transit, and an AUTH token generated in
      Secrets Manager.

    Nothing may reach the port until :meth:`allow_from` is called with a security group: there is
    deliberately no way to open it to a CIDR.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnet_ids: list[str],
        demo: bool,
        node_type: str,
        engine_version: str,
        port: int = DEFAULT_REDIS_PORT,
        replicas: int = 1,
    ) -> None:
        super().__init__(scope, construct_id)
        self.port = port
        self.tls = not demo
        self.auth_secret: secretsmanager.ISecret | None = None

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"Redis (ElastiCache) on port {port}: ingress only from allowed security groups",
            # Redis never opens connections; only replies leave, and security groups are stateful.
            allow_all_outbound=False,
        )
        self.subnet_group = elasticache.CfnSubnetGroup(
            self,
            "SubnetGroup",
            description="cachewarm Redis: private subnets",
            subnet_ids=subnet_ids,
        )
        major = engine_version.split(".")[0]
        self.parameter_group = elasticache.CfnParameterGroup(
            self,
            "ParameterGroup",
            cache_parameter_group_family=f"redis{major}",
            description=f"cachewarm: broker and cache in one instance, so maxmemory-policy {MAXMEMORY_POLICY}",
            properties={"maxmemory-policy": MAXMEMORY_POLICY},
        )

        if demo:
            self.cluster = elasticache.CfnCacheCluster(
                self,
                "Cluster",
                engine="redis",
                engine_version=engine_version,
                cache_node_type=node_type,
                num_cache_nodes=1,
                port=port,
                cache_subnet_group_name=self.subnet_group.ref,
                cache_parameter_group_name=self.parameter_group.ref,
                vpc_security_group_ids=[self.security_group.security_group_id],
            )
            self.host = self.cluster.attr_redis_endpoint_address
            if port == DEFAULT_REDIS_PORT:
                acknowledge(self.cluster, "AwsSolutions-AEC5", _DEFAULT_PORT_REASON)
        else:
            # Letters and digits only: the token goes into a rediss:// URL unescaped, and ElastiCache
            # forbids @, " and / in it.
            self.auth_secret = secretsmanager.Secret(
                self,
                "AuthToken",
                description="cachewarm Redis AUTH token",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    password_length=64, exclude_punctuation=True
                ),
                removal_policy=RemovalPolicy.DESTROY,
            )
            acknowledge(
                self.auth_secret,
                "AwsSolutions-SMG4",
                "Rotating an ElastiCache AUTH token needs the ROTATE/SET sequence on the replication group "
                "and a rolling restart of the workers; docs/deploying.md describes the manual procedure.",
            )
            self.replication_group = elasticache.CfnReplicationGroup(
                self,
                "ReplicationGroup",
                replication_group_description="cachewarm broker and cache",
                engine="redis",
                engine_version=engine_version,
                cache_node_type=node_type,
                num_cache_clusters=1 + replicas,
                automatic_failover_enabled=True,
                multi_az_enabled=True,
                at_rest_encryption_enabled=True,
                transit_encryption_enabled=True,
                # "required" rejects plaintext clients; the mode exists from Redis 7.
                transit_encryption_mode="required" if int(major) >= 7 else None,
                # A CloudFormation dynamic reference: the token never appears in the template.
                auth_token=self.auth_secret.secret_value.unsafe_unwrap(),
                port=port,
                cache_subnet_group_name=self.subnet_group.ref,
                cache_parameter_group_name=self.parameter_group.ref,
                security_group_ids=[self.security_group.security_group_id],
                snapshot_retention_limit=3,
                auto_minor_version_upgrade=True,
            )
            self.host = self.replication_group.attr_primary_end_point_address
            if port == DEFAULT_REDIS_PORT:
                acknowledge(self.replication_group, "AwsSolutions-AEC5", _DEFAULT_PORT_REASON)

    @property
    def endpoint(self) -> str:
        """``host:port`` of the primary (a token until deploy)."""
        return Fn.join(":", [self.host, Token.as_string(self.port)])

    @property
    def url_without_secret(self) -> str:
        """The URL the workers use, with the AUTH token left out (it is injected at run time)."""
        scheme = "rediss" if self.tls else "redis"
        query = "?ssl_cert_reqs=required" if self.tls else ""
        return Fn.join("", [f"{scheme}://", self.host, f":{self.port}/0{query}"])

    def allow_from(self, peer: ec2.ISecurityGroup, description: str) -> None:
        """Open the Redis port to one security group."""
        self.security_group.add_ingress_rule(peer, ec2.Port.tcp(self.port), description)


_DEFAULT_PORT_REASON = (
    "6379 is the port the original design and every Redis client default to; the port is configurable "
    "(context redisPort), and access is controlled by security groups, not by obscurity."
)

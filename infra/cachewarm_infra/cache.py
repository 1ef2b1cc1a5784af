"""ElastiCache (Valkey by default, or Redis OSS): the Celery broker and the summary cache in one instance.

With ``cacheMode=serverless|cluster`` the same construct is the broker alone, and the cache is a
:class:`cachewarm_infra.scaled_cache.ScaledCache` whose user group reuses this construct's users (all users
live here in every mode, so switching modes keeps their ids and passwords).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from aws_cdk import Fn, RemovalPolicy, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cachewarm_infra import acl
from cachewarm_infra.lint import AWS_MANAGED_KEYS, skip_checkov
from cachewarm_infra.nag import acknowledge

#: The instance holds the broker's queues and the cache. Every cache key has a TTL and the broker's
#: keys do not, so a volatile-* policy can evict only cache entries, never queued tasks. LFU keeps the
#: hot summaries that the warmer works for.
MAXMEMORY_POLICY = "volatile-lfu"

DEFAULT_REDIS_PORT = 6379

#: Generated passwords: letters and digits only, so that they go into a rediss:// URL unescaped and never
#: meet ElastiCache's forbidden characters or the ACL syntax.
PASSWORD_LENGTH = 64


def parameter_group_family(engine: str, version: str) -> str:
    """ElastiCache's parameter group family: ``valkey8``, ``valkey7``, ``redis7``, ``redis6.x``."""
    major = version.split(".")[0]
    if engine == "redis" and major == "6":
        return "redis6.x"
    return f"{engine}{major}"


class RedisCache(Construct):
    """A subnet group over the private subnets, a security group, a parameter group and the cache.

    ``engine`` is ``valkey`` (ElastiCache for Valkey) or ``redis`` (Redis OSS); both speak the protocol
    the app, Celery and the functions use.

    * ``demo=True``: the original design's ``CfnCacheCluster`` (one node, no TLS, no AUTH).
    * otherwise: a ``CfnReplicationGroup`` (cluster mode disabled) with a primary and ``replicas``
      replicas, Multi-AZ and automatic failover, encryption at rest and in transit (TLS required), and
      RBAC: a user group of the users in :mod:`cachewarm_infra.acl` (``default`` switched off, ``broker``,
      ``cache``, ``metrics``), each with a password generated in Secrets Manager. Each secret is JSON,
      ``{"username": ..., "password": ...}``: :attr:`broker_secret`, :attr:`cache_secret`,
      :attr:`metrics_secret` (and the unused ``default`` user's, which nobody is granted).

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
        engine: str = "valkey",
        port: int = DEFAULT_REDIS_PORT,
        replicas: int = 1,
        key_prefix: str = acl.DEFAULT_KEY_PREFIX,
        members: Collection[str] = acl.SHARED_GROUP,
        cluster_cache_user: bool = False,
        snapshot_retention_days: int = 3,
    ) -> None:
        """``members``: the users in this group (all of them when it is broker and cache at once, else
        :data:`~cachewarm_infra.acl.BROKER_GROUP`); ``cluster_cache_user``: the cache is a Redis Cluster
        elsewhere, so the cache user gets the cluster protocol's commands (:func:`cachewarm_infra.acl.cache_access`).
        """
        super().__init__(scope, construct_id)
        if engine not in acl.ENGINES:
            raise ValueError(f"engine {engine!r}: expected one of {', '.join(acl.ENGINES)}")
        self.engine = engine
        self.port = port
        self.tls = not demo
        #: The RBAC users' secrets by user name (production mode only).
        self.user_secrets: dict[str, secretsmanager.Secret] = {}
        self.user_group: elasticache.CfnUserGroup | None = None
        #: The ElastiCache users by user name (production mode only); a scaled-out cache groups some of them.
        self.users: dict[str, elasticache.CfnUser] = {}
        shared = set(members) >= set(acl.SHARED_GROUP)
        role = "broker and cache" if shared else "broker"

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"{engine} (ElastiCache) on port {port}: ingress only from allowed security groups",
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
            cache_parameter_group_family=parameter_group_family(engine, engine_version),
            description=(
                f"cachewarm: broker and cache in one instance, so maxmemory-policy {MAXMEMORY_POLICY}"
                if shared
                else f"cachewarm broker: maxmemory-policy {MAXMEMORY_POLICY} never evicts queues (no TTL)"
            ),
            properties={"maxmemory-policy": MAXMEMORY_POLICY},
        )

        if demo:
            self.cluster = elasticache.CfnCacheCluster(
                self,
                "Cluster",
                engine=engine,
                engine_version=engine_version,
                cache_node_type=node_type,
                num_cache_nodes=1,
                port=port,
                cache_subnet_group_name=self.subnet_group.ref,
                cache_parameter_group_name=self.parameter_group.ref,
                vpc_security_group_ids=[self.security_group.security_group_id],
            )
            self.host = self.cluster.attr_redis_endpoint_address
            if port == DEFAULT_REDIS_PORT and engine == "redis":
                acknowledge(self.cluster, "AwsSolutions-AEC5", _DEFAULT_PORT_REASON)
        else:
            self.user_group = self._users(engine, key_prefix, members, cluster_cache_user)
            self.replication_group = elasticache.CfnReplicationGroup(
                self,
                "ReplicationGroup",
                replication_group_description=f"cachewarm {role}",
                engine=engine,
                engine_version=engine_version,
                cache_node_type=node_type,
                num_cache_clusters=1 + replicas,
                automatic_failover_enabled=True,
                multi_az_enabled=True,
                at_rest_encryption_enabled=True,
                transit_encryption_enabled=True,
                # "required" rejects plaintext clients; the mode exists from Redis OSS 7 and Valkey 7.2.
                transit_encryption_mode="required" if int(major) >= 7 else None,
                # RBAC (which needs TLS): the users below, instead of one AUTH token for everyone.
                user_group_ids=[self.user_group.ref],
                port=port,
                cache_subnet_group_name=self.subnet_group.ref,
                cache_parameter_group_name=self.parameter_group.ref,
                security_group_ids=[self.security_group.security_group_id],
                snapshot_retention_limit=snapshot_retention_days,
                auto_minor_version_upgrade=True,
            )
            self.host = self.replication_group.attr_primary_end_point_address
            if port == DEFAULT_REDIS_PORT and engine == "redis":
                acknowledge(self.replication_group, "AwsSolutions-AEC5", _DEFAULT_PORT_REASON)
            acknowledge(
                self.replication_group,
                "AwsSolutions-AEC6",
                "Clients authenticate with RBAC (a user group of per-role users with generated passwords, "
                "cachewarm_infra.acl), which replaces the single AUTH token the rule looks for; the default "
                "user is switched off.",
            )

    # --- RBAC ---------------------------------------------------------------------------------------

    def _users(self, engine: str, key_prefix: str, members: Collection[str], cluster: bool) -> elasticache.CfnUserGroup:
        """One user per :func:`cachewarm_infra.acl.users` entry, a generated password each; ``members`` in the group."""
        base = resource_id(Stack.of(self).stack_name)
        for user in acl.users(key_prefix, engine, cluster=cluster):
            secret = secretsmanager.Secret(
                self,
                f"{user.role}UserSecret",
                description=f"cachewarm {engine} RBAC user {user.name!r} (username and password)",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    secret_string_template=json.dumps({"username": user.name}),
                    generate_string_key="password",
                    password_length=PASSWORD_LENGTH,
                    exclude_punctuation=True,
                ),
                removal_policy=RemovalPolicy.DESTROY,
            )
            acknowledge(
                secret,
                "AwsSolutions-SMG4",
                "An ElastiCache user's password is rotated by adding a second password to the user, restarting "
                "its clients and removing the first (docs/deploying.md, The cache engine and its users); there is no "
                "rotation Lambda for ElastiCache users.",
            )
            skip_checkov(
                secret,
                "CKV_AWS_149",
                f"The {user.name} user's password is encrypted with the AWS-managed key aws/secretsmanager; only "
                f"the roles the stack grants may read it, in this account only. {AWS_MANAGED_KEYS}",
            )
            self.user_secrets[user.name] = secret
            self.users[user.name] = elasticache.CfnUser(
                self,
                f"{user.role}User",
                engine=engine,
                user_id=f"{base}-{user.role.lower()}",
                user_name=user.name,
                access_string=user.access,
                # A CloudFormation dynamic reference: the password never appears in the template.
                passwords=[secret.secret_value_from_json("password").unsafe_unwrap()],
            )
        return elasticache.CfnUserGroup(
            self,
            "UserGroup",
            engine=engine,
            user_group_id=f"{base}-users",
            user_ids=[user.ref for name, user in self.users.items() if name in members],
        )

    def _secret(self, name: str) -> secretsmanager.ISecret | None:
        return self.user_secrets.get(name)

    @property
    def broker_secret(self) -> secretsmanager.ISecret | None:
        """The broker user's secret (REDIS_URL of the tasks); None in demo mode (no AUTH)."""
        return self._secret(acl.BROKER_USER)

    @property
    def cache_secret(self) -> secretsmanager.ISecret | None:
        """The cache user's secret (CACHE_REDIS_URL of the tasks, the change-capture function)."""
        return self._secret(acl.CACHE_USER)

    @property
    def metrics_secret(self) -> secretsmanager.ISecret | None:
        """The metrics user's secret (the queue-depth function: LLEN only)."""
        return self._secret(acl.METRICS_USER)

    @property
    def endpoint(self) -> str:
        """``host:port`` of the primary (a token until deploy)."""
        return Fn.join(":", [self.host, Token.as_string(self.port)])

    @property
    def url_without_secret(self) -> str:
        """The URL the clients use, without credentials (the user name and password are injected at run time)."""
        scheme = "rediss" if self.tls else "redis"
        query = "?ssl_cert_reqs=required" if self.tls else ""
        return Fn.join("", [f"{scheme}://", self.host, f":{self.port}/0{query}"])

    def allow_from(self, peer: ec2.ISecurityGroup, description: str) -> None:
        """Open the Redis port to one security group."""
        self.security_group.add_ingress_rule(peer, ec2.Port.tcp(self.port), description)


def resource_id(stack_name: str) -> str:
    """A prefix for ElastiCache user and user group ids, which are unique per account and region.

    Ids start with a letter and hold lowercase letters, digits and single hyphens (40 characters at most:
    the prefix keeps 30, leaving room for ``-metrics``).
    """
    base = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", stack_name.lower())).strip("-")
    if Token.is_unresolved(stack_name) or not base:
        base = "cachewarm"
    if not base[0].isalpha():
        base = f"cw-{base}"
    return base[:30].rstrip("-")


_DEFAULT_PORT_REASON = (
    "6379 is the port the original design and every Redis client default to; the port is configurable "
    "(context redisPort), and access is controlled by security groups, not by obscurity."
)

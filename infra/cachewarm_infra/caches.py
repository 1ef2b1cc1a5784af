"""The broker and the cache, per ``cacheMode``: one replication group for both, or a broker and a scaled-out cache.

:func:`build_caches` makes the ElastiCache resources; :class:`Caches` answers what the stack wires from them:
the clients' environment, whom each security group admits, and the outputs. Grants stay in ``stack.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_secretsmanager as secretsmanager

from cachewarm.settings import ENV_VARS
from cachewarm_infra import acl
from cachewarm_infra.cache import RedisCache
from cachewarm_infra.config import CacheMode, InfraConfig
from cachewarm_infra.scaled_cache import ScaledCache

#: The app's switch between redis-py's Redis and RedisCluster for the cache (``standalone`` is its default).
#: The name is the contract's (design notes), so the stack does not depend on the app version that declares it.
CACHE_MODE_ENV = "CACHE_REDIS_MODE"
CLUSTER_CLIENT_MODE = "cluster"


@dataclass(frozen=True)
class Caches:
    """``broker`` always serves ``REDIS_URL`` (Celery, beat, Flower, the queue depth); ``cache`` is the same
    object in ``node`` mode and a :class:`ScaledCache` otherwise."""

    mode: CacheMode
    broker: RedisCache
    cache: RedisCache | ScaledCache

    @property
    def split(self) -> bool:
        return self.mode.split

    @property
    def cache_secret(self) -> secretsmanager.ISecret | None:
        """The cache user's secret (the broker's construct owns every user); None in demo mode."""
        return self.broker.cache_secret

    def task_environment(self) -> dict[str, str]:
        """The tasks' Redis variables, without credentials (the entrypoint splices each URL's user in)."""
        environment = {ENV_VARS["redis_url"]: self.broker.url_without_secret}
        if self.split:
            environment[ENV_VARS["cache_redis_url"]] = self.cache.url_without_secret
            environment[CACHE_MODE_ENV] = CLUSTER_CLIENT_MODE
        elif self.broker.cache_secret is not None:
            # The same endpoint reached as another user.
            environment[ENV_VARS["cache_redis_url"]] = self.broker.url_without_secret
        return environment

    def change_capture_environment(self) -> dict[str, str]:
        """The invalidation function's Redis variables: the cache's URL and client mode.

        Split modes set no ``REDIS_URL``: the function never touches the broker, its security group is not
        admitted there, and its user (``cache``) does not exist on the broker's group.
        """
        if self.split:
            return {
                ENV_VARS["cache_redis_url"]: self.cache.url_without_secret,
                CACHE_MODE_ENV: CLUSTER_CLIENT_MODE,
            }
        return {ENV_VARS["redis_url"]: self.broker.url_without_secret}

    def admit(self, peer: ec2.ISecurityGroup, description: str, *, broker: bool = True, cache: bool = True) -> None:
        """Open the broker's and/or the cache's port to a security group (both are one group in node mode)."""
        if broker or (cache and not self.split):
            self.broker.allow_from(peer, description)
        if cache and self.split:
            self.cache.allow_from(peer, description)

    def outputs(self, stack: Stack) -> None:
        """``RedisEndpoint``/``RedisUrl`` (the broker; in node mode also the cache), the users' secrets, and in
        split modes ``CacheEndpoint``, ``CacheRedisUrl`` and ``CacheRedisMode``."""
        what = "Redis broker" if self.split else "Redis primary"
        CfnOutput(stack, "RedisEndpoint", value=self.broker.endpoint, description=f"{what} host:port")
        CfnOutput(
            stack,
            "RedisUrl",
            value=self.broker.url_without_secret,
            description="REDIS_URL without credentials (the users' secrets: RedisBrokerSecretArn, RedisCacheSecretArn)",
        )
        for name, secret in (("Broker", self.broker.broker_secret), ("Cache", self.broker.cache_secret)):
            if secret is not None:
                CfnOutput(
                    stack,
                    f"Redis{name}SecretArn",
                    value=secret.secret_arn,
                    description=f"the {name.lower()} RBAC user's username and password (JSON)",
                )
        if self.split:
            CfnOutput(
                stack,
                "CacheEndpoint",
                value=self.cache.endpoint,
                description=f"the {self.mode.value} cache's endpoint host:port (a Redis Cluster)",
            )
            CfnOutput(
                stack,
                "CacheRedisUrl",
                value=self.cache.url_without_secret,
                description="CACHE_REDIS_URL without credentials (the cache user: RedisCacheSecretArn)",
            )
            CfnOutput(stack, "CacheRedisMode", value=CLUSTER_CLIENT_MODE, description=f"{CACHE_MODE_ENV} for clients")


def build_caches(scope: Stack, config: InfraConfig, *, vpc: ec2.IVpc, subnet_ids: list[str]) -> Caches:
    """The ``Redis`` construct (always; every RBAC user lives there) and, in split modes, the ``Cache``."""
    mode = config.cache_mode
    broker = RedisCache(
        scope,
        "Redis",
        vpc=vpc,
        subnet_ids=subnet_ids,
        demo=config.demo,
        node_type=config.broker_node_type if mode.split else config.cache_node_type,
        engine=config.cache_engine.value,
        engine_version=config.cache_engine_version,
        port=config.redis_port,
        # The broker needs failover, not read scaling: one replica in another AZ when the cache is elsewhere.
        replicas=1 if mode.split else config.replicas_per_shard,
        members=acl.BROKER_GROUP if mode.split else acl.SHARED_GROUP,
        cluster_cache_user=mode.split,
        snapshot_retention_days=config.snapshot_retention_days,
    )
    if not mode.split:
        return Caches(mode, broker, broker)
    cache = ScaledCache(
        scope,
        "Cache",
        vpc=vpc,
        subnet_ids=subnet_ids,
        subnet_group_name=broker.subnet_group.ref,
        kind=mode,
        users=[broker.users[name] for name in acl.CACHE_GROUP],
        engine=config.cache_engine.value,
        engine_version=config.cache_engine_version,
        node_type=config.cache_node_type,
        port=config.redis_port,
        shards=config.cache_shards,
        replicas=config.replicas_per_shard,
        snapshot_retention_days=config.snapshot_retention_days,
        max_ecpu_per_second=config.serverless_max_ecpu_per_second,
        max_storage_gb=config.serverless_max_storage_gb,
    )
    return Caches(mode, broker, cache)

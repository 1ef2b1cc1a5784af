"""``cacheMode``: node (one replication group for broker and cache), serverless and cluster (a scaled-out cache).

The two scaled-out modes are the session fixtures ``serverless`` and ``cluster`` (conftest.py); ``offline`` is
node mode. Resources are found by type and by the references between them, never by generated logical ids.
"""

from __future__ import annotations

import pytest

from cachewarm_infra import acl
from cachewarm_infra.caches import CACHE_MODE_ENV
from cachewarm_infra.config import CacheMode, ConfigError, InfraConfig
from cachewarm_infra.scaled_cache import CLUSTER_PARAMETERS, SERVERLESS_METRIC_DIMENSION, SERVERLESS_PORTS
from tests.support.infra import get_att_id, ingress_rules, resources

SPLIT = ["serverless", "cluster"]
CAPTURE_HANDLER = "cachewarm.change_capture.lambda_handler"


def config(**context: object) -> InfraConfig:
    return InfraConfig.from_context(context.get)


# --- navigating the template ------------------------------------------------------------------------


def groups(raw: dict) -> tuple[dict, dict | None]:
    """(the broker's replication group, the cluster-mode one or None), by ClusterMode."""
    found = [r["Properties"] for r in resources(raw, "AWS::ElastiCache::ReplicationGroup").values()]
    clustered = [g for g in found if g.get("ClusterMode") == "enabled"]
    (broker,) = [g for g in found if g.get("ClusterMode") != "enabled"]
    return broker, (clustered[0] if clustered else None)


def cache_resource(raw: dict) -> dict:
    """The cache's own resource: the serverless cache, or the cluster-mode replication group."""
    serverless = resources(raw, "AWS::ElastiCache::ServerlessCache")
    if serverless:
        return next(iter(serverless.values()))["Properties"]
    clustered = groups(raw)[1]
    assert clustered is not None
    return clustered


def cache_security_group(raw: dict) -> str:
    (ref,) = cache_resource(raw)["SecurityGroupIds"]
    return get_att_id(ref)


def broker_security_group(raw: dict) -> str:
    (ref,) = groups(raw)[0]["SecurityGroupIds"]
    return get_att_id(ref)



def user_names(raw: dict, group: dict) -> set[str]:
    return {raw["Resources"][ref["Ref"]]["Properties"]["UserName"] for ref in group["UserIds"]}


def user_group_of(raw: dict, ref: dict) -> dict:
    return raw["Resources"][ref["Ref"]]["Properties"]


def container_env(raw: dict, name: str) -> tuple[dict, dict]:
    for task in resources(raw, "AWS::ECS::TaskDefinition").values():
        for spec in task["Properties"]["ContainerDefinitions"]:
            if spec["Name"] == name:
                env = {e["Name"]: e["Value"] for e in spec["Environment"]}
                return env, {s["Name"]: s["ValueFrom"] for s in spec.get("Secrets", [])}
    raise AssertionError(name)


def function(raw: dict, handler: str) -> dict:
    (fn,) = [
        f["Properties"]
        for f in resources(raw, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == handler
    ]
    return fn


def secret_of_user(raw: dict, name: str) -> str:
    (user,) = [
        u["Properties"]
        for u in resources(raw, "AWS::ElastiCache::User").values()
        if u["Properties"]["UserName"] == name
    ]
    return user["Passwords"][0]["Fn::Join"][1][1]["Ref"]


# --- context ------------------------------------------------------------------------------------------


def test_node_is_the_default_and_the_split_modes_parse():
    assert config().cache_mode is CacheMode.NODE and not config().cache_mode.split
    cfg = config(cacheMode="Serverless", serverlessMaxEcpuPerSecond="20000", serverlessMaxStorageGb=5)
    assert cfg.cache_mode is CacheMode.SERVERLESS and cfg.cache_mode.split
    assert (cfg.serverless_max_ecpu_per_second, cfg.serverless_max_storage_gb) == (20_000, 5)
    cfg = config(cacheMode="cluster", cacheShards="3", replicasPerShard="2", brokerNodeType="cache.t4g.micro")
    assert (cfg.cache_shards, cfg.replicas_per_shard, cfg.broker_node_type) == (3, 2, "cache.t4g.micro")
    assert config(cacheMode="cluster", cacheEngine="redis").cache_engine.value == "redis"


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"cacheMode": "sharded"}, "cacheMode"),
        ({"cacheMode": "serverless", "mode": "demo"}, "cacheMode"),
        ({"cacheMode": "cluster", "mode": "demo"}, "cacheMode"),
        ({"cacheMode": "serverless", "cacheEngine": "redis"}, "cacheMode"),
        ({"cacheMode": "serverless", "serverlessMaxEcpuPerSecond": "999"}, "serverlessMaxEcpuPerSecond"),
        ({"cacheMode": "serverless", "serverlessMaxStorageGb": "0"}, "serverlessMaxStorageGb"),
        ({"cacheMode": "serverless", "serverlessMaxStorageGb": "5001"}, "serverlessMaxStorageGb"),
        ({"cacheMode": "cluster", "cacheShards": "0"}, "cacheShards"),
        ({"cacheMode": "cluster", "cacheShards": "501"}, "cacheShards"),
        ({"cacheSnapshotRetentionDays": "36"}, "cacheSnapshotRetentionDays"),
    ],
)
def test_bad_cache_mode_context_names_the_key(context, key):
    with pytest.raises(ConfigError) as caught:
        config(**context)
    assert caught.value.key == key


# --- the access strings -------------------------------------------------------------------------------


def test_the_cluster_cache_user_speaks_the_cluster_protocol_and_keeps_its_keys():
    node, cluster = acl.cache_access("cw").split(), acl.cache_access("cw", cluster=True).split()
    # Key patterns are derived from cachewarm.keys.KeySchema in both (whatever its version is).
    patterns = [f"~{p}" for p in acl.cache_key_patterns("cw")]
    assert [w for w in node if w.startswith("~")] == [w for w in cluster if w.startswith("~")] == patterns
    assert set(cluster) - set(node) == {f"+{c}" for c in acl.CLUSTER_CACHE_COMMANDS}
    assert set(node) - set(cluster) == {"+select"}
    assert "+cluster|slots" in cluster and "+cluster" not in cluster  # only the slot map, no CLUSTER admin
    assert "+cluster|slots" in acl.cache_access("cw", "redis", cluster=True).split()
    assert set(acl.BROKER_GROUP) | set(acl.CACHE_GROUP) == set(acl.SHARED_GROUP)
    assert acl.CACHE_USER not in acl.BROKER_GROUP and acl.BROKER_USER not in acl.CACHE_GROUP


# --- node mode is unchanged ---------------------------------------------------------------------------


def test_node_mode_has_one_group_for_broker_and_cache(offline):
    assert not resources(offline.raw, "AWS::ElastiCache::ServerlessCache")
    broker, clustered = groups(offline.raw)
    assert clustered is None and broker["NumCacheClusters"] == 2
    assert user_names(offline.raw, user_group_of(offline.raw, broker["UserGroupIds"][0])) == set(acl.SHARED_GROUP)
    env, _ = container_env(offline.raw, "worker")
    assert CACHE_MODE_ENV not in env and env["CACHE_REDIS_URL"] == env["REDIS_URL"]
    assert "CacheRedisUrl" not in offline.raw["Outputs"]


# --- the scaled-out modes -----------------------------------------------------------------------------


def test_serverless_cache_is_valkey_8_with_limits_snapshots_and_the_cache_user(serverless):
    (cache,) = [r["Properties"] for r in resources(serverless.raw, "AWS::ElastiCache::ServerlessCache").values()]
    assert (cache["Engine"], cache["MajorEngineVersion"]) == ("valkey", "8")
    assert cache["CacheUsageLimits"] == {
        "DataStorage": {"Unit": "GB", "Maximum": 10},
        "ECPUPerSecond": {"Maximum": 50_000},
    }
    assert cache["SnapshotRetentionLimit"] == 3
    assert cache["SubnetIds"] == ["subnet-0a", "subnet-0b"]
    assert "KmsKeyId" not in cache  # AWS-managed keys, as everywhere in the stack
    assert cache["ServerlessCacheName"].startswith("cachewarm-") and len(cache["ServerlessCacheName"]) <= 40
    group = user_group_of(serverless.raw, {"Ref": cache["UserGroupId"]["Ref"]})
    assert group["Engine"] == "valkey" and user_names(serverless.raw, group) == set(acl.CACHE_GROUP)


def test_cluster_cache_is_sharded_multi_az_tls_with_partial_coverage(cluster):
    group = cache_resource(cluster.raw)
    assert (group["Engine"], group["EngineVersion"]) == ("valkey", "8.0")
    assert (group["NumNodeGroups"], group["ReplicasPerNodeGroup"]) == (2, 1)
    assert "NumCacheClusters" not in group
    assert group["AutomaticFailoverEnabled"] is True and group["MultiAZEnabled"] is True
    assert group["TransitEncryptionEnabled"] is True and group["TransitEncryptionMode"] == "required"
    assert group["AtRestEncryptionEnabled"] is True and group["SnapshotRetentionLimit"] == 3
    params = cluster.raw["Resources"][group["CacheParameterGroupName"]["Ref"]]["Properties"]
    assert params["CacheParameterGroupFamily"] == "valkey8"
    assert params["Properties"] == CLUSTER_PARAMETERS
    assert params["Properties"]["cluster-enabled"] == "yes"
    assert params["Properties"]["cluster-require-full-coverage"] == "no"
    broker, _ = groups(cluster.raw)
    assert group["CacheSubnetGroupName"] == broker["CacheSubnetGroupName"]  # the same private subnets
    users = user_group_of(cluster.raw, group["UserGroupIds"][0])
    assert user_names(cluster.raw, users) == set(acl.CACHE_GROUP)


@pytest.mark.parametrize("shape", SPLIT)
def test_the_broker_is_its_own_small_multi_az_group_with_the_broker_users(shape, request):
    synth = request.getfixturevalue(shape)
    broker, _ = groups(synth.raw)
    assert broker["CacheNodeType"] == "cache.t4g.small" and broker["NumCacheClusters"] == 2
    assert broker["MultiAZEnabled"] is True and broker["TransitEncryptionMode"] == "required"
    assert broker["ReplicationGroupDescription"] == "cachewarm broker"
    assert user_names(synth.raw, user_group_of(synth.raw, broker["UserGroupIds"][0])) == set(acl.BROKER_GROUP)
    # One user each, shared by id between the groups: default is in both, cache only in the cache's.
    users = {
        u["Properties"]["UserName"]: u["Properties"] for u in resources(synth.raw, "AWS::ElastiCache::User").values()
    }
    assert set(users) == set(acl.SHARED_GROUP)
    assert users["cache"]["AccessString"] == acl.cache_access("cw", "valkey", cluster=True)
    assert len(resources(synth.raw, "AWS::ElastiCache::UserGroup")) == 2


@pytest.mark.parametrize("shape", SPLIT)
def test_tasks_get_the_broker_url_and_the_cluster_cache_url(shape, request):
    synth = request.getfixturevalue(shape)
    broker_id = next(
        k
        for k, v in resources(synth.raw, "AWS::ElastiCache::ReplicationGroup").items()
        if v["Properties"].get("ClusterMode") != "enabled"
    )
    broker_secret, cache_secret = secret_of_user(synth.raw, "broker"), secret_of_user(synth.raw, "cache")
    for name in ("worker", "beat", "flower"):
        env, secrets = container_env(synth.raw, name)
        assert env["REDIS_URL"]["Fn::Join"][1] == [
            "rediss://",
            {"Fn::GetAtt": [broker_id, "PrimaryEndPoint.Address"]},
            ":6379/0?ssl_cert_reqs=required",
        ]
        parts = env["CACHE_REDIS_URL"]["Fn::Join"][1]
        assert parts[0] == "rediss://" and parts[2] == ":" and len(parts) == 4  # no database, no query
        attribute = "Endpoint" if shape == "serverless" else "ConfigurationEndPoint"
        assert parts[1]["Fn::GetAtt"][1] == f"{attribute}.Address" and parts[3]["Fn::GetAtt"][1] == f"{attribute}.Port"
        assert env[CACHE_MODE_ENV] == "cluster"
        assert secrets["REDIS_BROKER_PASSWORD"] == {"Fn::Join": ["", [{"Ref": broker_secret}, ":password::"]]}
        assert secrets["REDIS_CACHE_PASSWORD"] == {"Fn::Join": ["", [{"Ref": cache_secret}, ":password::"]]}


@pytest.mark.parametrize("shape", SPLIT)
def test_functions_reach_the_right_one(shape, request):
    synth = request.getfixturevalue(shape)
    worker, _ = container_env(synth.raw, "worker")
    capture = function(synth.raw, CAPTURE_HANDLER)["Environment"]["Variables"]
    # The invalidation function: the cache, as a cluster, as the cache user; never the broker.
    assert capture["CACHE_REDIS_URL"] == worker["CACHE_REDIS_URL"] and capture[CACHE_MODE_ENV] == "cluster"
    assert "REDIS_URL" not in capture
    assert capture["REDIS_AUTH_SECRET_ARN"] == {"Ref": secret_of_user(synth.raw, "cache")}
    # The queue-depth function: the broker's queues, as the metrics user.
    depth = function(synth.raw, "index.handler")["Environment"]["Variables"]
    broker_id = next(
        k
        for k, v in resources(synth.raw, "AWS::ElastiCache::ReplicationGroup").items()
        if v["Properties"].get("ClusterMode") != "enabled"
    )
    assert depth["REDIS_HOST"] == {"Fn::GetAtt": [broker_id, "PrimaryEndPoint.Address"]}
    assert depth["REDIS_AUTH_SECRET_ARN"] == {"Ref": secret_of_user(synth.raw, "metrics")}


@pytest.mark.parametrize("shape", SPLIT)
def test_security_groups_admit_only_their_clients(shape, request):
    synth = request.getfixturevalue(shape)
    capture_group = function(synth.raw, CAPTURE_HANDLER)["VpcConfig"]["SecurityGroupIds"][0]
    task_group = function(synth.raw, "index.handler")["VpcConfig"]["SecurityGroupIds"][0]  # the tasks' group
    low, high = SERVERLESS_PORTS if shape == "serverless" else (6379, 6379)
    cache_rules = ingress_rules(synth.raw, cache_security_group(synth.raw))
    broker_rules = ingress_rules(synth.raw, broker_security_group(synth.raw))
    for rule in cache_rules + broker_rules:
        assert "CidrIp" not in rule and "CidrIpv6" not in rule, rule
    assert {(r["FromPort"], r["ToPort"]) for r in cache_rules} == {(low, high)}
    assert {(r["FromPort"], r["ToPort"]) for r in broker_rules} == {(6379, 6379)}
    assert sorted(map(str, (r["SourceSecurityGroupId"] for r in cache_rules))) == sorted(
        map(str, [task_group, capture_group, "sg-0123"])
    )
    assert sorted(map(str, (r["SourceSecurityGroupId"] for r in broker_rules))) == sorted(
        map(str, [task_group, "sg-0123"])
    )


@pytest.mark.parametrize("shape", SPLIT)
def test_outputs_name_the_broker_and_the_cache(shape, request):
    outputs = request.getfixturevalue(shape).raw["Outputs"]
    for key in (
        "RedisEndpoint",
        "RedisUrl",
        "RedisBrokerSecretArn",
        "RedisCacheSecretArn",
        "CacheEndpoint",
        "CacheRedisUrl",
        "CacheRedisMode",
    ):
        assert key in outputs, key
    assert outputs["CacheRedisMode"]["Value"] == "cluster"


def test_serverless_alarms_watch_throttling_and_the_usage_limits(serverless):
    (cache,) = [r["Properties"] for r in resources(serverless.raw, "AWS::ElastiCache::ServerlessCache").values()]
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in resources(serverless.raw, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AWS/ElastiCache"
    }
    assert set(alarms) == {"ThrottledCmds", "ElastiCacheProcessingUnits", "BytesUsedForCache"}
    for alarm in alarms.values():
        assert alarm["Dimensions"] == [{"Name": SERVERLESS_METRIC_DIMENSION, "Value": cache["ServerlessCacheName"]}]
    assert alarms["ThrottledCmds"]["Threshold"] == 0
    assert alarms["ElastiCacheProcessingUnits"]["Threshold"] == 50_000 * 60 * 0.8  # Sum per minute at 80 %
    assert alarms["BytesUsedForCache"]["Threshold"] == 10 * 1e9 * 0.8
    assert alarms["BytesUsedForCache"]["TreatMissingData"] == "breaching"


def test_the_cluster_mode_like_node_mode_has_no_elasticache_alarms(cluster, offline):
    for synth in (cluster, offline):
        assert not [
            a
            for a in resources(synth.raw, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("Namespace") == "AWS/ElastiCache"
        ]


@pytest.mark.parametrize("shape", SPLIT)
def test_cdk_nag_reports_nothing_unacknowledged(shape, request):
    from aws_cdk.assertions import Annotations, Match
    from cdk_nag import AwsSolutionsChecks

    synth = request.getfixturevalue(shape)
    report = AwsSolutionsChecks().validate_scope(synth.app)
    problems = [(v.rule_name, [r.construct_path for r in v.violating_resources]) for v in report.violations]
    assert report.success and not problems, problems
    assert Annotations.from_stack(synth.stack).find_error("*", Match.any_value()) == []


@pytest.mark.slow
def test_cluster_mode_on_redis_oss_with_more_shards(tmp_path):
    from tests.support.infra import OFFLINE_CONTEXT, synth

    redis = synth({**OFFLINE_CONTEXT, "cacheMode": "cluster", "cacheEngine": "redis", "cacheShards": "4"}, tmp_path)
    group = cache_resource(redis.raw)
    assert (group["Engine"], group["NumNodeGroups"]) == ("redis", 4)
    families = {
        p["Properties"]["CacheParameterGroupFamily"]
        for p in resources(redis.raw, "AWS::ElastiCache::ParameterGroup").values()
    }
    assert families == {"redis7"}
    users = {
        u["Properties"]["UserName"]: u["Properties"] for u in resources(redis.raw, "AWS::ElastiCache::User").values()
    }
    assert users["cache"]["AccessString"] == acl.cache_access("cw", "redis", cluster=True)

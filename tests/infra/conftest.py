"""Fixtures for the infra tests: the CDK app synthesized in-process, once per shape (see tests/support/infra.py)."""

from __future__ import annotations

import pytest

from tests.support.infra import OFFLINE_CONTEXT, Synth, synth


@pytest.fixture(scope="session")
def offline(tmp_path_factory) -> Synth:
    """Production mode in an imported VPC (the offline acceptance command)."""
    return synth(OFFLINE_CONTEXT, tmp_path_factory.mktemp("cdk-offline"))


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> Synth:
    """Demo mode in an imported VPC."""
    return synth(
        {"mode": "demo", "vpcId": "vpc-0123", "privateSubnetIds": "subnet-0a,subnet-0b"},
        tmp_path_factory.mktemp("cdk-demo"),
    )


@pytest.fixture(scope="session")
def created(tmp_path_factory) -> Synth:
    """Production mode with no VPC context: the app creates its own VPC."""
    return synth({}, tmp_path_factory.mktemp("cdk-created"))


@pytest.fixture(scope="session")
def serverless(tmp_path_factory) -> Synth:
    """Production mode, imported VPC, the cache on ElastiCache Serverless for Valkey (cacheMode=serverless)."""
    return synth({**OFFLINE_CONTEXT, "cacheMode": "serverless"}, tmp_path_factory.mktemp("cdk-serverless"))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Synth:
    """Production mode, imported VPC, the cache on a cluster-mode-enabled replication group (cacheMode=cluster)."""
    return synth({**OFFLINE_CONTEXT, "cacheMode": "cluster"}, tmp_path_factory.mktemp("cdk-cluster"))

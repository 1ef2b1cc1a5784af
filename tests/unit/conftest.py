"""Fixtures of the fast tests: fakeredis for Redis, moto for AWS, and no settings from the caller.

Every unit test starts from an environment without the project's settings (the
defaults apply and nothing points at a real stack), with fake AWS credentials,
and with the process's wiring forgotten (``cachewarm.reset()``) before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import fakeredis
import pytest
from moto import mock_aws

import cachewarm
from cachewarm.repository import RestaurantRepository
from cachewarm.settings import ENV_VARS, Settings

REGION = "us-east-1"
TABLE = "Restaurants"


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch) -> Iterator[None]:
    """No project setting from the caller's environment; settings and clients rebuilt per test."""
    for name in (*ENV_VARS.values(), "AWS_DEFAULT_REGION", "AWS_PROFILE", "REDIS_HOSTNAME", "FLOWER_BASIC_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_REGION", REGION)
    cachewarm.reset()
    yield
    cachewarm.reset()


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    """One fakeredis server: every client built on it sees the same data."""
    return fakeredis.FakeServer()


@pytest.fixture
def r(fake_server) -> fakeredis.FakeRedis:
    """A fakeredis client on :func:`fake_server`."""
    return fakeredis.FakeRedis(server=fake_server)


@pytest.fixture
def moto_dynamodb() -> Iterator[Any]:
    """A low-level DynamoDB client on moto (everything boto3 builds inside the test is mocked too)."""
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


@pytest.fixture
def repo(moto_dynamodb) -> RestaurantRepository:
    """The repository on moto, with the table created."""
    repository = RestaurantRepository(moto_dynamodb, TABLE)
    assert repository.create_table() is True
    return repository


@pytest.fixture
def moto_settings(repo, monkeypatch, tmp_path) -> Settings:
    """Settings for the moto table, the cache at an address nobody listens on, the cwd a temporary folder."""
    monkeypatch.chdir(tmp_path)  # default rejects/checkpoint paths land here
    return Settings(aws_region=REGION, table_name=TABLE, redis_url="redis://127.0.0.1:1/0")

"""The DynamoDB client the loader's writer threads share, built once per process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cachewarm.clients import dynamodb_client
from cachewarm.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from cachewarm.repository import RestaurantRepository


def writer_client(settings: Settings) -> DynamoDBClient:
    """The DynamoDB client writer threads share, built once per process.

    The core's client (botocore ``standard`` retries for throttling, 5xx and
    transport errors). ``UnprocessedItems`` are not an error to botocore;
    :class:`~loaders.writer.BatchWriter` retries those. Parameter validation is
    off because :mod:`loaders.validate` has already checked every item more
    strictly.
    """
    client: DynamoDBClient = dynamodb_client(settings, validate_parameters=False)
    return client


def repository(settings: Settings) -> RestaurantRepository:
    """A RestaurantRepository on the writer client (one botocore client per process, not two)."""
    from cachewarm.repository import RestaurantRepository

    return RestaurantRepository(writer_client(settings), settings.table_name)


def ensure_table(settings: Settings, *, create: bool) -> None:
    """Create the table (and wait for it), or check that it exists (TableNotFoundError with its hint)."""
    repo = repository(settings)
    if create:
        repo.create_table(wait=True)
    else:
        repo.describe()

"""The DynamoDB repository: the table schema, and reading a restaurant summary.

Every botocore error is translated into :mod:`cachewarm.errors` here, so no
caller handles ``ClientError`` codes.

How a summary is read (one request per 1 MB page, usually exactly one):
a review's ``GSI1SK`` is ``#REVIEW#<id>``, which orders reviews by id, not by
time, so "query GSI1 descending with Limit 6" returns arbitrary reviews. The
restaurant and all its reviews share the GSI1 partition ``REST#<name>``, so one
Query of that partition returns everything; we keep the 5 largest
``created_at`` values in a bounded heap while paging. Fetching keys first and
then the 5 newest with BatchGetItem would move fewer bytes for very popular
restaurants, but costs at least two round trips every time; the single Query
is the fewest requests this layout allows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from cachewarm.errors import (
    PermanentError,
    TableNotFoundError,
    ThrottledError,
    TransportError,
)
from cachewarm.model import (
    RESTAURANT_PREFIX,
    Summary,
    most_recent,
    plain,
    restaurant_pk,
    strip_keys,
)

GSI_NAME = "GSI1"

_THROTTLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
}


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments for the single-table design (on-demand billing)."""
    string = "S"
    return {
        "TableName": table_name,
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": string} for name in ("PK", "SK", "GSI1PK", "GSI1SK")
        ],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": GSI_NAME,
                "KeySchema": [
                    {"AttributeName": "GSI1PK", "KeyType": "HASH"},
                    {"AttributeName": "GSI1SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


@contextlib.contextmanager
def translate_errors(table_name: str) -> Iterator[None]:
    """Turn botocore exceptions into the project's exception tree."""
    from botocore import exceptions as bx

    try:
        yield
    except bx.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        message = error.get("Message", str(exc))
        if code == "ResourceNotFoundException":
            raise TableNotFoundError(table_name) from None
        if code in _THROTTLE_CODES:
            raise ThrottledError(f"DynamoDB throttled the request ({code}): {message}") from exc
        if code in ("UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException"):
            raise PermanentError(f"DynamoDB refused our credentials ({code}): {message}") from None
        raise PermanentError(f"DynamoDB error {code}: {message}") from exc
    except (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ReadTimeoutError,
            bx.ConnectTimeoutError, bx.ConnectionError) as exc:
        raise TransportError(f"cannot reach DynamoDB: {exc}") from None
    except bx.NoCredentialsError:
        raise PermanentError(
            "no AWS credentials found; configure them, or set AWS_ENDPOINT_URL_DYNAMODB for a local table"
        ) from None
    except bx.NoRegionError:
        raise PermanentError("no AWS region; set AWS_REGION") from None


class RestaurantRepository:
    """Reads and writes the ``Restaurants`` single table through a low-level client."""

    def __init__(self, client: Any, table_name: str):
        self.client = client
        self.table_name = table_name

    # -- table lifecycle -------------------------------------------------
    def create_table(self, *, wait: bool = True) -> bool:
        """Create the table and its GSI. Idempotent: returns False if it already existed.

        With ``wait``, returns only once the table is ACTIVE.
        """
        created = True
        with translate_errors(self.table_name):
            try:
                self.client.create_table(**table_definition(self.table_name))
            except self.client.exceptions.ResourceInUseException:
                created = False
            if wait:
                self.client.get_waiter("table_exists").wait(
                    TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
                )
        return created

    def delete_table(self, *, wait: bool = True) -> bool:
        """Delete the table. Returns False if it did not exist."""
        with translate_errors(self.table_name):
            try:
                self.client.delete_table(TableName=self.table_name)
            except self.client.exceptions.ResourceNotFoundException:
                return False
            if wait:
                self.client.get_waiter("table_not_exists").wait(
                    TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
                )
        return True

    def describe(self) -> dict[str, Any]:
        """DescribeTable's ``Table`` (raises TableNotFoundError)."""
        with translate_errors(self.table_name):
            return self.client.describe_table(TableName=self.table_name)["Table"]

    # -- reads -------------------------------------------------------------
    def get_summary(self, name: str) -> Summary | None:
        """The restaurant and its 5 newest reviews, or None when it does not exist."""
        from boto3.dynamodb.types import TypeDeserializer

        deserialize = TypeDeserializer().deserialize
        restaurant: dict[str, Any] | None = None
        reviews: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": GSI_NAME,
            "KeyConditionExpression": "GSI1PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": restaurant_pk(name)}},
        }
        with translate_errors(self.table_name):
            while True:
                page = self.client.query(**kwargs)
                for raw in page.get("Items", []):
                    item = {k: deserialize(v) for k, v in raw.items()}
                    if str(item.get("GSI1SK", "")).startswith(RESTAURANT_PREFIX):
                        restaurant = item
                    else:
                        reviews.append(item)
                # Bound memory on very popular restaurants: keep only the candidates.
                if len(reviews) > 256:
                    reviews = most_recent(reviews)
                last = page.get("LastEvaluatedKey")
                if not last:
                    break
                kwargs["ExclusiveStartKey"] = last
        if restaurant is None:
            return None
        return Summary(
            restaurant=plain(strip_keys(restaurant)),
            reviews=[plain(strip_keys(r)) for r in most_recent(reviews)],
        )

    def count_items(self) -> int:
        """Approximate item count from DescribeTable (DynamoDB refreshes it every ~6 h)."""
        return int(self.describe().get("ItemCount", 0))

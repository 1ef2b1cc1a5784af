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
from typing import TYPE_CHECKING, Any

from cachewarm.errors import (
    PermanentError,
    TableNotFoundError,
    ThrottledError,
    TransportError,
)
from cachewarm.model import (
    RESTAURANT_PREFIX,
    REVIEW_PREFIX,
    STAR_ATTRIBUTES,
    USER_PREFIX,
    Summary,
    most_recent,
    plain,
    restaurant_pk,
    strip_keys,
)
from cachewarm.schema import GSI1, create_table_request

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        PutTypeDef,
        TableDescriptionTypeDef,
        UpdateTypeDef,
    )

#: The index a summary is read from (cachewarm.schema declares it).
GSI_NAME = GSI1.name

_THROTTLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
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

    def __init__(self, client: DynamoDBClient, table_name: str):
        self.client = client
        self.table_name = table_name
        # False once the endpoint said it has no TransactWriteItems (dynalite).
        self.transactions_supported = True

    # -- table lifecycle -------------------------------------------------
    def create_table(self, *, wait: bool = True) -> bool:
        """Create the table and its GSI. Idempotent: returns False if it already existed.

        With ``wait``, returns only once the table is ACTIVE.
        """
        created = True
        with translate_errors(self.table_name):
            try:
                self.client.create_table(**create_table_request(self.table_name))
            except self.client.exceptions.ResourceInUseException:
                created = False
            if wait:
                self.client.get_waiter("table_exists").wait(
                    TableName=self.table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
                )
            if not created:
                self._ensure_stream()
        return created

    def _ensure_stream(self) -> None:
        """Turn on the change feed's stream of a table made before it had one (idempotent)."""
        spec = create_table_request(self.table_name)["StreamSpecification"]
        current = self.client.describe_table(TableName=self.table_name)["Table"].get("StreamSpecification", {})
        if not current.get("StreamEnabled"):
            self.client.update_table(TableName=self.table_name, StreamSpecification=spec)

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

    def describe(self) -> TableDescriptionTypeDef:
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

    # -- writes ------------------------------------------------------------
    def add_review(
        self, restaurant: str, *, username: str, rating: int, text: str, created_at: str, review_id: str,
    ) -> tuple[dict[str, Any], int]:
        """Write a review and bump the restaurant's star count and version in one transaction.

        Optimistic concurrency: the restaurant update is conditional on the
        version read just before, so the returned new version is exact; a
        concurrent writer makes us re-read and try again.
        Returns the review item and the restaurant's new version.
        """
        from boto3.dynamodb.types import TypeSerializer

        if rating not in STAR_ATTRIBUTES:
            raise PermanentError(f"rating must be 1-5, got {rating}")
        serialize = TypeSerializer().serialize
        pk = restaurant_pk(restaurant)
        review = {
            "PK": f"{USER_PREFIX}{username}", "SK": pk, "GSI1PK": pk, "GSI1SK": f"{REVIEW_PREFIX}{review_id}",
            "id": review_id, "restaurant": restaurant, "username": username, "rating": rating,
            "review": text, "created_at": created_at,
        }
        put: PutTypeDef = {
            "TableName": self.table_name,
            "Item": {k: serialize(v) for k, v in review.items()},
            "ConditionExpression": "attribute_not_exists(PK)",
        }
        duplicate = PermanentError(f"{username!r} has already reviewed {restaurant!r}")
        with translate_errors(self.table_name):
            for _ in range(10):
                version = self._read_version(restaurant)
                if not self.transactions_supported:
                    return review, self._write_without_transaction(restaurant, put, rating, duplicate)
                try:
                    self.client.transact_write_items(
                        TransactItems=[{"Put": put}, {"Update": self._bump(restaurant, rating, version)}]
                    )
                    return review, (version or 0) + 1
                except self.client.exceptions.TransactionCanceledException as exc:
                    reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                    if reasons and reasons[0] == "ConditionalCheckFailed":
                        raise duplicate from None
                    if "ConditionalCheckFailed" not in reasons and "TransactionConflict" not in reasons:
                        raise
                    # another writer bumped the version first: re-read and retry
                except self.client.exceptions.ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "UnknownOperationException":
                        raise
                    self.transactions_supported = False  # dynalite, the local stand-in, has none
        raise ThrottledError(f"too many concurrent writers on {restaurant!r}; try again")

    def _read_version(self, restaurant: str) -> int | None:
        """The restaurant's version (None when it has none yet); PermanentError if it does not exist."""
        pk = restaurant_pk(restaurant)
        item = self.client.get_item(
            TableName=self.table_name, Key={"PK": {"S": pk}, "SK": {"S": pk}},
            ConsistentRead=True, ProjectionExpression="PK, version",
        ).get("Item")
        if item is None:
            raise PermanentError(f"restaurant {restaurant!r} does not exist")
        return int(item["version"]["N"]) if "version" in item else None

    def _bump(self, restaurant: str, rating: int, version: int | None) -> UpdateTypeDef:
        """UpdateItem arguments: +1 star of ``rating`` and version+1, if the version is still ``version``."""
        pk = restaurant_pk(restaurant)
        values: dict[str, AttributeValueTypeDef] = {":one": {"N": "1"}, ":new": {"N": str((version or 0) + 1)}}
        if version is None:
            condition = "attribute_exists(PK) AND attribute_not_exists(version)"
        else:
            condition = "attribute_exists(PK) AND version = :v"
            values[":v"] = {"N": str(version)}
        return {
            "TableName": self.table_name,
            "Key": {"PK": {"S": pk}, "SK": {"S": pk}},
            "UpdateExpression": f"ADD {STAR_ATTRIBUTES[rating]} :one SET version = :new",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }

    def _write_without_transaction(self, restaurant: str, put: PutTypeDef, rating: int, duplicate: Exception) -> int:
        """Emulate the transaction on a server without TransactWriteItems (dynalite).

        The conditional review put goes first, so a duplicate review changes
        nothing; the version-conditioned update is the commit point, retried on
        a concurrent writer. Unlike the real transaction, a crash between the
        two leaves the review without its star count: acceptable on a local
        stand-in only. Returns the new version.
        """
        try:
            self.client.put_item(**put)
        except self.client.exceptions.ConditionalCheckFailedException:
            raise duplicate from None
        for _ in range(10):
            version = self._read_version(restaurant)
            try:
                self.client.update_item(**self._bump(restaurant, rating, version))
                return (version or 0) + 1
            except self.client.exceptions.ConditionalCheckFailedException:
                continue
        raise ThrottledError(f"too many concurrent writers on {restaurant!r}; try again")

    def count_items(self) -> int:
        """Approximate item count, without reading the whole table.

        DescribeTable's ItemCount (DynamoDB refreshes it about every 6 hours)
        when it is non-zero; otherwise (a fresh table, or dynalite, which does
        not keep it) an estimate from COUNT scans of a few random segments.
        """
        import random

        described = int(self.describe().get("ItemCount", 0))
        if described:
            return described
        total, probes = 1024, 8
        counted = 0
        with translate_errors(self.table_name):
            for segment in random.sample(range(total), probes):
                counted += self._count_segment(segment, total)
        if counted >= 50:
            return round(counted * total / probes)
        # Too few to extrapolate: the table is small, so counting all of it is cheap.
        with translate_errors(self.table_name):
            return self._count_segment(0, 1)

    def _count_segment(self, segment: int, total: int) -> int:
        """Items in one parallel-scan segment (COUNT only: no item bodies travel)."""
        counted = 0
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Select": "COUNT",
                                  "Segment": segment, "TotalSegments": total}
        while True:
            page = self.client.scan(**kwargs)
            counted += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return counted
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

"""The DynamoDB single table's schema, written once.

``cachewarm table create`` (:meth:`cachewarm.repository.RestaurantRepository.create_table`,
through :func:`create_table_request`) and the CDK table construct
(``infra/cachewarm_infra/table.py``) both build the table from these values, so a
table made by either is read by the same code. The names are DynamoDB's own
(``HASH``/``RANGE``, ``S``, ``ALL``, ``PAY_PER_REQUEST``), which the CDK's enums
take as values too. Everything else a deployment adds (point-in-time recovery,
encryption, removal policy) is the construct's business, not the schema's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.literals import (
        BillingModeType,
        ProjectionTypeType,
        ScalarAttributeTypeType,
        StreamViewTypeType,
    )
    from mypy_boto3_dynamodb.type_defs import CreateTableInputTypeDef, KeySchemaElementTypeDef


@dataclass(frozen=True)
class KeySchema:
    """A partition (``HASH``) and sort (``RANGE``) key, both strings."""

    partition: str
    sort: str

    @property
    def attributes(self) -> tuple[str, str]:
        """The two attribute names, partition key first."""
        return (self.partition, self.sort)


@dataclass(frozen=True)
class Index:
    """A global secondary index."""

    name: str
    key: KeySchema
    projection: ProjectionTypeType = "ALL"  # every attribute: a summary is read from the index alone


#: Every key attribute is a string.
KEY_ATTRIBUTE_TYPE: ScalarAttributeTypeType = "S"
#: On-demand: the load is bursty (bulk loads, warm fan-outs), and nothing needs capacity planning.
BILLING_MODE: BillingModeType = "PAY_PER_REQUEST"
TABLE_KEY = KeySchema("PK", "SK")
#: A restaurant and all its reviews share the GSI1 partition ``REST#<name>`` (see cachewarm.repository).
GSI1 = Index("GSI1", KeySchema("GSI1PK", "GSI1SK"))
INDEXES: tuple[Index, ...] = (GSI1,)
#: The change feed (cachewarm.change_capture) needs only the keys: every item's keys name its restaurant
#: (a restaurant's PK and SK are REST#<name>; a review's SK is REST#<restaurant>).
STREAM_VIEW_TYPE: StreamViewTypeType = "KEYS_ONLY"
#: Every key attribute of the table and its indexes, in declaration order.
KEY_ATTRIBUTES: tuple[str, ...] = (*TABLE_KEY.attributes, *(a for index in INDEXES for a in index.key.attributes))


def _key_schema(key: KeySchema) -> list[KeySchemaElementTypeDef]:
    return [{"AttributeName": key.partition, "KeyType": "HASH"}, {"AttributeName": key.sort, "KeyType": "RANGE"}]


def create_table_request(table_name: str) -> CreateTableInputTypeDef:
    """CreateTable's arguments for the table (the shape CloudFormation's ``AWS::DynamoDB::Table`` uses too)."""
    return {
        "TableName": table_name,
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": KEY_ATTRIBUTE_TYPE} for name in KEY_ATTRIBUTES
        ],
        "KeySchema": _key_schema(TABLE_KEY),
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.key),
                "Projection": {"ProjectionType": index.projection},
            }
            for index in INDEXES
        ],
        "BillingMode": BILLING_MODE,
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE},
    }

"""The DynamoDB single table, built from the core's one schema (``cachewarm.schema``)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from cachewarm import schema
from cachewarm.settings import Settings
from cachewarm_infra.lint import AWS_MANAGED_KEYS, skip_checkov

#: The index the app reads summaries from.
GSI1 = schema.GSI1.name

#: What the stream records carry (the core's schema: ``cachewarm table create`` turns on the same stream).
STREAM_VIEW_TYPE = dynamodb.StreamViewType(schema.STREAM_VIEW_TYPE)


#: DynamoDB's attribute type letters as the CDK names them. (Billing modes and projections are
#: named alike in both, so ``BillingMode(schema.BILLING_MODE)`` and ``ProjectionType(...)`` take them.)
_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _key(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=_ATTRIBUTE_TYPES[schema.KEY_ATTRIBUTE_TYPE])


class RestaurantsTable(Construct):
    """``Restaurants``: the schema of ``cachewarm table create``, plus what a deployment adds.

    Keys, the GSI, billing and the stream's view come from :mod:`cachewarm.schema`, so the same code reads a
    table made by either. This construct adds point-in-time recovery, encryption with the
    AWS-managed KMS key and a ``KEYS_ONLY`` stream (change capture, see
    :mod:`cachewarm_infra.change_capture`); ``removal_policy=RETAIN`` also turns on deletion
    protection.

    The stream carries keys only because the keys are enough: every item's keys name its restaurant
    (a restaurant item is ``REST#<name>``/``REST#<name>``, a review ``USER#<user>``/``REST#<name>``),
    and the cache is invalidated by name.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table_name: str = Settings().table_name,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name,
            partition_key=_key(schema.TABLE_KEY.partition),
            sort_key=_key(schema.TABLE_KEY.sort),
            billing_mode=dynamodb.BillingMode(schema.BILLING_MODE),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            stream=STREAM_VIEW_TYPE,
            removal_policy=removal_policy,
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
        )
        for index in schema.INDEXES:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_key(index.key.partition),
                sort_key=_key(index.key.sort),
                projection_type=dynamodb.ProjectionType(index.projection),
            )
        skip_checkov(
            self.table,
            "CKV_AWS_119",
            "The table is encrypted at rest with the AWS-managed key aws/dynamodb (TableEncryption.AWS_MANAGED). "
            f"{AWS_MANAGED_KEYS}",
        )

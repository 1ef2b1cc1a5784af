"""The DynamoDB single table: ``PK``/``SK`` plus ``GSI1`` (see /docs and cachewarm.repository)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

GSI1 = "GSI1"


class RestaurantsTable(Construct):
    """``Restaurants``: on-demand, point-in-time recovery, encrypted with the AWS-managed KMS key.

    The schema matches ``cachewarm table create`` exactly, so the same code reads a table made by
    either. ``removal_policy=RETAIN`` also turns on deletion protection.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table_name: str = "Restaurants",
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name,
            partition_key=dynamodb.Attribute(name="PK", type=string),
            sort_key=dynamodb.Attribute(name="SK", type=string),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=removal_policy,
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
        )
        self.table.add_global_secondary_index(
            index_name=GSI1,
            partition_key=dynamodb.Attribute(name="GSI1PK", type=string),
            sort_key=dynamodb.Attribute(name="GSI1SK", type=string),
            projection_type=dynamodb.ProjectionType.ALL,
        )

"""cdk-nag (v3) wiring: the AwsSolutions pack runs as a CDK validation plugin at synth.

A violation that is not acknowledged stops ``cdk synth``. Every acknowledgment goes through
:func:`acknowledge`, which insists on a reason; the reasons are also written into the templates'
``Metadata.cdk_nag`` for auditors.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (``AwsSolutions-IAM5[Resource::...]`` style) on ``scope``."""
    if len(reason.strip()) < 20:
        raise ValueError(f"{rule}: an acknowledgment needs a real reason")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_lambda_execution_policies(function) -> None:
    """AwsSolutions-IAM4 on a VPC function's AWS-managed execution policies, with the reason (every function here)."""
    role = function.role
    assert role is not None
    for policy in ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole"):
        acknowledge(
            role,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{policy}]",
            "The AWS-managed Lambda execution policies (logs, VPC network interfaces) are the "
            "documented minimum for a function in a VPC.",
        )


def add_checks(scope: IConstruct) -> AwsSolutionsChecks:
    """Register the AwsSolutions pack on an App or Stage; returns the pack (tests call validate_scope)."""
    checks = AwsSolutionsChecks(scope, verbose=True, write_suppressions_to_cloud_formation=True)
    Validations.of(scope).add_plugins(checks)
    return checks

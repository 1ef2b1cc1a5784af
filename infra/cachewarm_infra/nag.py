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


def add_checks(scope: IConstruct) -> AwsSolutionsChecks:
    """Register the AwsSolutions pack on an App or Stage; returns the pack (tests call validate_scope)."""
    checks = AwsSolutionsChecks(scope, verbose=True, write_suppressions_to_cloud_formation=True)
    Validations.of(scope).add_plugins(checks)
    return checks

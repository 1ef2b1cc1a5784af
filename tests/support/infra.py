"""Helpers for the infra tests: synthesize the CDK app in-process.

``infra/`` is not an installed package, so it is put on ``sys.path`` here. Each synth uses the
context from ``infra/cdk.json`` (the same feature flags as the CLI) plus the shape's own keys, a
temporary output directory, and no AWS environment, exactly like an offline ``cdk synth``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))

#: The acceptance command's context: an imported VPC, two private subnets, one peer security group.
OFFLINE_CONTEXT = {"vpcId": "vpc-0123", "privateSubnetIds": "subnet-0a,subnet-0b", "peerSecurityGroupId": "sg-0123"}


@dataclass
class Synth:
    """One synthesized app."""

    app: object
    stack: object
    template: object  # aws_cdk.assertions.Template
    raw: dict


def synth(context: dict[str, str], outdir: Path) -> Synth:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from cachewarm_infra.app import build_app

    cdk_json = json.loads((INFRA / "cdk.json").read_text())
    app = cdk.App(context={**cdk_json.get("context", {}), **context}, outdir=str(outdir))
    app, stack = build_app(app, environ={})
    template = Template.from_stack(stack)
    return Synth(app=app, stack=stack, template=template, raw=template.to_json())


# --- navigating a synthesized template by references, not by names -------------------------------


def resources(raw: dict, kind: str) -> dict[str, dict]:
    """The template's resources of one type, by logical id."""
    return {key: value for key, value in raw["Resources"].items() if value["Type"] == kind}


def only(raw: dict, kind: str) -> tuple[str, dict]:
    """The one resource of a type (a failure when there are none or several)."""
    found = resources(raw, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return next(iter(found.items()))


def get_att_id(value: object) -> str:
    """The logical id a ``Fn::GetAtt`` refers to."""
    assert isinstance(value, dict) and "Fn::GetAtt" in value, value
    return value["Fn::GetAtt"][0]


def ingress_rules(raw: dict, group_id: str) -> list[dict]:
    """Every ingress rule of a security group: inline ones and AWS::EC2::SecurityGroupIngress."""
    rules = list(raw["Resources"][group_id]["Properties"].get("SecurityGroupIngress", []))
    for rule in resources(raw, "AWS::EC2::SecurityGroupIngress").values():
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}:
            rules.append(rule["Properties"])
    return rules

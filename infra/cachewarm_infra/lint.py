"""cfn-lint and checkov: the findings the templates keep on purpose, each decided in code with its reason.

cdk-nag runs at synth (:mod:`cachewarm_infra.nag`). Two more linters read the synthesized template:
cfn-lint (``tests/infra/test_cfn_lint.py`` runs it on every shape) and checkov (run by hand, see
docs/deploying.md). Both honour suppressions written in the suppressed resource's own ``Metadata``,
so an acknowledgment sits on the resource it excuses, travels with the template, and is obeyed by
the linters' own command lines:

* cfn-lint: ``Metadata["cfn-lint"]["config"]["ignore_checks"]`` (cfn-lint's native per-resource
  directive), with each rule's reason in ``Metadata["cfn-lint"]["reasons"]`` (which cfn-lint ignores);
* checkov: ``Metadata["checkov"]["skip"] = [{"id": ..., "comment": reason}]`` (checkov's native skip; its
  report prints the comment next to the skipped check).

Only warnings (``W*``) and informational findings (``I*``) of cfn-lint can be acknowledged; errors are fixed.
"""

from __future__ import annotations

import re

from aws_cdk import CfnResource
from constructs import IConstruct

CFN_LINT_KEY = "cfn-lint"
CHECKOV_KEY = "checkov"

_CFN_LINT_RULE = re.compile(r"^[WI]\d{4}$")
_CHECKOV_CHECK = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")

#: The project's answer to every "use a customer-managed KMS key" check, quoted in each such reason.
AWS_MANAGED_KEYS = (
    "AWS-managed keys are the project's deliberate choice over customer-managed KMS keys: no monthly key "
    "cost and no key policy to write, grant and maintain, while IAM already decides who can read the data."
)

#: CKV_AWS_158, quoted after what the log group holds.
LOG_GROUP_KEYS = (
    "CloudWatch Logs encrypts every log group at rest with keys AWS manages; a customer-managed key would "
    f"also need a key policy admitting the regional logs service principal. {AWS_MANAGED_KEYS}"
)

#: CKV_AWS_173, quoted after what the variables hold.
LAMBDA_ENVIRONMENT_KEYS = (
    "Lambda encrypts environment variables at rest with the AWS-managed key aws/lambda, and no variable here "
    f"holds a secret (the Redis AUTH token is read from Secrets Manager). {AWS_MANAGED_KEYS}"
)

#: cfn-lint W3005 on a ``lambda.Function``: CDK renders the DependsOn, and half of it matters.
FUNCTION_ROLE_DEPENDS_ON = (
    "CDK's lambda.Function depends on its whole role construct, so DependsOn names the role (already implied "
    "by the Role GetAtt, hence W3005) and the role's DefaultPolicy, which is not implied and is the point: the "
    "function must not run before its permissions exist. CDK renders the list; the redundant entry is harmless."
)


def substantial(reason: str) -> bool:
    """A reason says why, in a sentence: at least 40 characters and 6 words."""
    text = reason.strip()
    return len(text) >= 40 and len(text.split()) >= 6


def ignore_cfn_lint(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge cfn-lint's ``rule`` (a ``W``/``I`` rule id) on the resource of ``scope``, with its reason."""
    if not _CFN_LINT_RULE.match(rule):
        raise ValueError(f"{rule}: only cfn-lint warnings and informational rules (W1234, I1234) are acknowledged")
    _require_reason(rule, reason)
    resource = cfn_resource(scope)
    current = resource.get_metadata(CFN_LINT_KEY) or {}
    config = dict(current.get("config", {}))
    reasons = dict(current.get("reasons", {}))
    if rule in reasons:
        raise ValueError(f"{rule} is already acknowledged on {resource.node.path}")
    config["ignore_checks"] = [*config.get("ignore_checks", []), rule]
    reasons[rule] = reason
    resource.add_metadata(CFN_LINT_KEY, {**current, "config": config, "reasons": reasons})


def skip_checkov(scope: IConstruct, check: str, reason: str) -> None:
    """Skip checkov's ``check`` (``CKV_AWS_123``) on the resource of ``scope``; the reason is the skip's comment."""
    if not _CHECKOV_CHECK.match(check):
        raise ValueError(f"{check}: not a checkov check id (CKV_AWS_123)")
    _require_reason(check, reason)
    resource = cfn_resource(scope)
    current = resource.get_metadata(CHECKOV_KEY) or {}
    skips = list(current.get("skip", []))
    if any(skip.get("id") == check for skip in skips):
        raise ValueError(f"{check} is already skipped on {resource.node.path}")
    resource.add_metadata(CHECKOV_KEY, {**current, "skip": [*skips, {"id": check, "comment": reason}]})


def cfn_resource(scope: IConstruct) -> CfnResource:
    """``scope`` itself when it is a CloudFormation resource, else its default child (an L2's L1)."""
    if isinstance(scope, CfnResource):
        return scope
    child = scope.node.default_child
    if isinstance(child, CfnResource):
        return child
    raise TypeError(f"{scope.node.path}: no CloudFormation resource to annotate")


def _require_reason(rule: str, reason: str) -> None:
    if not substantial(reason):
        raise ValueError(f"{rule}: an acknowledgment needs a real reason (a sentence that says why)")

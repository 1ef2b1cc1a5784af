"""cfn-lint on every synthesized template, and the reasons behind what cfn-lint and checkov are told to ignore.

cfn-lint runs in-process (``cfnlint.api.lint``, region us-east-1) on every template of each shape's cloud
assembly, as ``cfn-lint <template>`` would, and obeys the templates' own per-resource directives:

* errors (E*) fail, except the id-format errors (E1150/E1151/E1154) on the placeholder ids that the offline
  and demo contexts pass (``vpc-0123``...): the stack acknowledges the same ones to CDK's own validation, and
  the created shape, which has no placeholders, gets every error check;
* warnings (W*) fail unless acknowledged on their resource with a reason
  (:func:`cachewarm_infra.lint.ignore_cfn_lint`), and every acknowledgment must still be needed;
* informational findings (I*) are printed (``pytest -rP``), not asserted.

checkov is not installed in the project's venv: it pins boto3, botocore and packaging older than the project's,
and networkx older than cfn-lint's. Its skips (:func:`cachewarm_infra.lint.skip_checkov`) are checked here for
their reasons; with a checkov executable (``CHECKOV=/path/to/checkov``, or ``checkov`` on PATH) each template is
also scanned, and every failed check must be skipped or fixed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.infra import Synth

pytestmark = pytest.mark.slow

SHAPES = ("offline", "demo", "created", "serverless", "cluster")
REGIONS = ["us-east-1"]
#: cfn-lint's id-format rules: security group, VPC and subnet ids.
PLACEHOLDER_RULES = {"E1150", "E1151", "E1154"}
#: checkov's checks that ask for a customer-managed KMS key (or reject an AWS-managed one).
KMS_CHECKS = {"CKV_AWS_27", "CKV_AWS_119", "CKV_AWS_149", "CKV_AWS_158", "CKV_AWS_173"}
CHECKOV = os.environ.get("CHECKOV") or shutil.which("checkov")


@dataclass(frozen=True)
class Finding:
    rule: str
    template: str
    resource: str | None  # logical id, for findings under Resources
    message: str
    path: tuple = ()

    def describe(self, paths: dict[str, str]) -> str:
        where = paths.get(self.resource or "", self.resource or "/".join(map(str, self.path)))
        return f"{self.rule} {self.template} {where}: {self.message}"


@dataclass
class Linted:
    """One shape's templates and what cfn-lint reports on them (its directives obeyed)."""

    shape: str
    synth: Synth
    templates: dict[str, dict] = field(default_factory=dict)  # file name -> template
    findings: list[Finding] = field(default_factory=list)

    @property
    def construct_paths(self) -> dict[str, str]:
        """Logical id -> construct path, for messages that say which construct to edit."""
        from aws_cdk import CfnElement

        stack = self.synth.stack
        return {
            stack.resolve(stack.get_logical_id(node)): node.node.path
            for node in stack.node.find_all()
            if isinstance(node, CfnElement)
        }


# --- running cfn-lint ------------------------------------------------------------------------------


def lint(template: str, name: str) -> list[Finding]:
    """cfn-lint's findings, informational ones included."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint

    found = []
    for match in cfn_lint(template, config=ManualArgs(regions=REGIONS, include_checks=["I"])):
        path = tuple(getattr(match, "path", None) or ())
        resource = path[1] if len(path) >= 2 and path[0] == "Resources" else None
        found.append(Finding(match.rule.id, name, resource, match.message, path))
    return found


def template_files(synth: Synth) -> list[Path]:
    """Every template of the assembly: the stacks' (nested stages too) and nested stacks' ones."""
    assembly = synth.app.synth()
    stacks = {Path(stack.template_full_path) for stack in assembly.stacks_recursively}
    assert stacks, "the assembly has no stack"
    return sorted(stacks | set(Path(assembly.directory).glob("*.template.json")))


def without_directives(template: dict) -> dict:
    """The template with every resource's cfn-lint Metadata removed."""
    copy = json.loads(json.dumps(template))
    for resource in copy.get("Resources", {}).values():
        resource.get("Metadata", {}).pop("cfn-lint", None)
    return copy


@pytest.fixture(scope="module", params=SHAPES)
def linted(request) -> Linted:
    synth = request.getfixturevalue(request.param)
    result = Linted(request.param, synth)
    for path in template_files(synth):
        text = path.read_text()
        result.templates[path.name] = json.loads(text)
        result.findings.extend(lint(text, path.name))
    return result


# --- the decisions, as functions the tests below (and the mechanism's own test) call ----------------


def value_at(template: dict, path: Iterable) -> object:
    node: object = template
    for key in path:
        node = node[key]  # type: ignore[index]
    return node


def placeholder_ids(synth: Synth) -> set[str]:
    """The ids the shape's context passes (offline: vpc-0123, subnet-0a...): cfn-lint rejects their format."""
    config = synth.stack.config
    return {value for value in (config.vpc_id, *config.private_subnet_ids, *config.peer_security_group_ids) if value}


def errors(findings: Iterable[Finding], templates: dict[str, dict], placeholders: set[str]) -> list[Finding]:
    """E* findings, but an id-format error on a context placeholder id."""
    return [
        finding
        for finding in findings
        if finding.rule.startswith("E")
        and not (
            finding.rule in PLACEHOLDER_RULES
            and finding.path
            and value_at(templates[finding.template], finding.path) in placeholders
        )
    ]


def assert_no_unacknowledged_warnings(findings: Iterable[Finding], paths: dict[str, str]) -> None:
    warnings = [finding for finding in findings if finding.rule.startswith("W")]
    assert not warnings, (
        "cfn-lint warnings that are neither fixed nor acknowledged; fix the construct, or acknowledge on the "
        "resource with cachewarm_infra.lint.ignore_cfn_lint(construct, rule, reason):\n  "
        + "\n  ".join(finding.describe(paths) for finding in warnings)
    )


def cfn_lint_acknowledgments(templates: dict[str, dict]) -> dict[tuple[str, str, str], str]:
    """(template, logical id, rule) -> reason, from the resources' Metadata["cfn-lint"]."""
    found = {}
    for name, template in templates.items():
        for logical_id, resource in template.get("Resources", {}).items():
            directive = resource.get("Metadata", {}).get("cfn-lint")
            if directive is None:
                continue
            ignored = directive.get("config", {}).get("ignore_checks", [])
            reasons = directive.get("reasons", {})
            assert sorted(ignored) == sorted(reasons), f"{logical_id}: every ignored rule needs its reason"
            for rule in ignored:
                found[(name, logical_id, rule)] = reasons[rule]
    return found


def checkov_skips(templates: dict[str, dict]) -> list[tuple[str, str, dict]]:
    """(template, logical id, skip) for every entry of the resources' Metadata["checkov"]["skip"]."""
    return [
        (name, logical_id, skip)
        for name, template in templates.items()
        for logical_id, resource in template.get("Resources", {}).items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


# --- cfn-lint on every shape (the three network shapes, and the two scaled-out cache modes) ---------


def test_templates_found(linted):
    assert linted.templates and all("Resources" in template for template in linted.templates.values())


def test_cfn_lint_reports_no_errors(linted):
    found = errors(linted.findings, linted.templates, placeholder_ids(linted.synth))
    paths = linted.construct_paths
    assert not found, "cfn-lint errors:\n  " + "\n  ".join(finding.describe(paths) for finding in found)


def test_cfn_lint_warnings_are_fixed_or_acknowledged(linted):
    assert_no_unacknowledged_warnings(linted.findings, linted.construct_paths)
    informational = Counter(finding.rule for finding in linted.findings if finding.rule.startswith("I"))
    examples = {finding.rule: finding.message for finding in linted.findings}
    for rule, count in sorted(informational.items()):
        print(f"{linted.shape}: {rule} x{count}: {examples[rule]}")


def test_each_acknowledgment_suppresses_a_finding_cfn_lint_still_makes(linted):
    """Without the directives, cfn-lint reports exactly the acknowledged findings more: none is stale."""
    acknowledged = set(cfn_lint_acknowledgments(linted.templates))
    reported = {(f.template, f.resource, f.rule) for f in linted.findings}
    bare = {
        (f.template, f.resource, f.rule)
        for name, template in linted.templates.items()
        for f in lint(json.dumps(without_directives(template)), name)
    }
    assert bare - reported == acknowledged, (
        f"stale acknowledgments (remove them): {sorted(acknowledged - (bare - reported))}; "
        f"suppressed without an acknowledgment: {sorted((bare - reported) - acknowledged)}"
    )


def test_every_cfn_lint_acknowledgment_carries_a_reason(linted):
    from cachewarm_infra.lint import substantial

    for name, template in linted.templates.items():
        assert "cfn-lint" not in template.get("Metadata", {}), f"{name}: no template-wide cfn-lint configuration"
    for (_, logical_id, rule), reason in cfn_lint_acknowledgments(linted.templates).items():
        assert re.fullmatch(r"[WI]\d{4}", rule), f"{logical_id}: {rule}: errors are fixed, not acknowledged"
        assert substantial(reason), (logical_id, rule, reason)


# --- checkov --------------------------------------------------------------------------------------


def test_every_checkov_skip_carries_a_reason(linted):
    from cachewarm_infra.lint import AWS_MANAGED_KEYS, substantial

    skips = checkov_skips(linted.templates)
    assert skips, "the templates carry checkov's decisions"
    seen = set()
    for name, logical_id, skip in skips:
        check, reason = skip.get("id", ""), skip.get("comment", "")
        assert re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", check), (logical_id, skip)
        assert (name, logical_id, check) not in seen, f"{logical_id}: {check} skipped twice"
        seen.add((name, logical_id, check))
        assert substantial(reason), (logical_id, skip)
        if check in KMS_CHECKS:
            assert AWS_MANAGED_KEYS in reason, f"{logical_id}: {check}: say why an AWS-managed key is used"


@pytest.mark.skipif(CHECKOV is None, reason="checkov is not installed (set CHECKOV=/path/to/checkov to run it)")
def test_checkov_fails_no_check(linted, tmp_path):
    failed = []
    for name, template in linted.templates.items():
        path = tmp_path / name
        path.write_text(json.dumps(template, indent=1))
        run = subprocess.run(
            [CHECKOV, "-f", str(path), "--framework", "cloudformation", "-o", "json", "--quiet", "--compact",
             "--skip-download"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert run.returncode in (0, 1), run.stderr
        reports = json.loads(run.stdout)
        for report in reports if isinstance(reports, list) else [reports]:
            for check in report.get("results", {}).get("failed_checks", []):
                failed.append(f"{check['check_id']} {check['resource']}: {check['check_name']}")
    assert not failed, (
        "checkov checks that are neither fixed nor skipped; fix the construct, or skip on the resource with "
        "cachewarm_infra.lint.skip_checkov(construct, check, reason):\n  " + "\n  ".join(failed)
    )


# --- the mechanism itself, on a tiny stack with a known warning ----------------------------------

_REASON = "The policy depends on its queue on purpose in this test, to exercise the mechanism."


def tiny_template(*, acknowledge: bool) -> dict:
    """A queue and its policy; the policy's DependsOn duplicates its Ref (cfn-lint W3005)."""
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from cachewarm_infra.lint import ignore_cfn_lint, skip_checkov

    stack = cdk.Stack(cdk.App(), "Tiny")
    queue = cdk.CfnResource(stack, "Queue", type="AWS::SQS::Queue")
    policy = cdk.CfnResource(
        stack,
        "Policy",
        type="AWS::SQS::QueuePolicy",
        properties={
            "Queues": [queue.ref],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "sqs:*",
                        "Resource": "*",
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            },
        },
    )
    policy.node.add_dependency(queue)
    if acknowledge:
        ignore_cfn_lint(policy, "W3005", _REASON)
        skip_checkov(queue, "CKV_AWS_27", _REASON)
    return Template.from_stack(stack).to_json()


def test_an_unacknowledged_warning_fails_loudly():
    template = tiny_template(acknowledge=False)
    findings = lint(json.dumps(template), "Tiny.template.json")
    assert {(f.rule, f.resource) for f in findings if f.rule.startswith("W")} == {("W3005", "Policy")}
    with pytest.raises(AssertionError, match=r"W3005 Tiny\.template\.json Tiny/Policy"):
        assert_no_unacknowledged_warnings(findings, {"Policy": "Tiny/Policy"})


def test_an_acknowledgment_is_native_metadata_that_cfn_lint_and_checkov_obey():
    template = tiny_template(acknowledge=True)
    resources = template["Resources"]
    assert resources["Policy"]["Metadata"]["cfn-lint"] == {
        "config": {"ignore_checks": ["W3005"]},
        "reasons": {"W3005": _REASON},
    }
    assert resources["Queue"]["Metadata"]["checkov"] == {"skip": [{"id": "CKV_AWS_27", "comment": _REASON}]}
    findings = lint(json.dumps(template), "Tiny.template.json")
    assert not [f for f in findings if f.rule.startswith(("E", "W"))]
    assert_no_unacknowledged_warnings(findings, {})
    assert cfn_lint_acknowledgments({"Tiny.template.json": template}) == {
        ("Tiny.template.json", "Policy", "W3005"): _REASON
    }


def test_acknowledgments_refuse_errors_vague_reasons_and_repeats():
    import aws_cdk as cdk

    from cachewarm_infra.lint import ignore_cfn_lint, skip_checkov

    stack = cdk.Stack(cdk.App(), "Tiny")
    queue = cdk.CfnResource(stack, "Queue", type="AWS::SQS::Queue")
    with pytest.raises(ValueError, match="E3012"):
        ignore_cfn_lint(queue, "E3012", _REASON)
    with pytest.raises(ValueError, match="real reason"):
        ignore_cfn_lint(queue, "W3005", "harmless")
    with pytest.raises(ValueError, match="real reason"):
        skip_checkov(queue, "CKV_AWS_27", "AWS-managed key")
    with pytest.raises(ValueError, match="checkov check id"):
        skip_checkov(queue, "AwsSolutions-SQS3", _REASON)
    skip_checkov(queue, "CKV_AWS_27", _REASON)
    with pytest.raises(ValueError, match="already skipped"):
        skip_checkov(queue, "CKV_AWS_27", _REASON)
    ignore_cfn_lint(queue, "W3005", _REASON)
    with pytest.raises(ValueError, match="already acknowledged"):
        ignore_cfn_lint(queue, "W3005", _REASON)
    with pytest.raises(TypeError, match="no CloudFormation resource"):
        skip_checkov(stack, "CKV_AWS_27", _REASON)

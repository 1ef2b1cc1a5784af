"""Build the CDK app: read the context, create the stack, register cdk-nag.

``infra/app.py`` (what cdk.json runs) and the tests both call :func:`build_app`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import aws_cdk as cdk

from cachewarm_infra.config import ConfigError, InfraConfig
from cachewarm_infra.nag import add_checks
from cachewarm_infra.stack import CachewarmStack


def build_app(
    app: cdk.App | None = None, *, environ: Mapping[str, str] | None = None
) -> tuple[cdk.App, CachewarmStack]:
    """Create the app (or use ``app``) and its one stack, with the AwsSolutions checks registered."""
    app = app or cdk.App()
    environ = os.environ if environ is None else environ
    config = InfraConfig.from_context(app.node.try_get_context)
    # The CDK CLI sets these from the credentials it finds. Without credentials the stack is
    # environment-agnostic, which is what offline synth needs.
    account = environ.get("CDK_DEFAULT_ACCOUNT")
    region = environ.get("CDK_DEFAULT_REGION")
    env = cdk.Environment(account=account, region=region) if account and region else None
    stack = CachewarmStack(
        app,
        config.stack_name,
        config=config,
        env=env,
        description=f"cachewarm ({config.mode.value}): ElastiCache Redis, DynamoDB table, Celery on ECS Fargate",
    )
    add_checks(app)
    return app, stack


def main() -> int:
    """Synthesize; a bad context value prints one line and exits 2."""
    try:
        app, _ = build_app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0

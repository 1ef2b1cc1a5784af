#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth`` / ``npx cdk deploy`` from this directory (see cdk.json).

Context keys are listed in cachewarm_infra.config.CONTEXT_KEYS and in docs/deploying.md.
"""

from __future__ import annotations

import os
import sys

import aws_cdk as cdk
from cachewarm_infra.config import ConfigError, InfraConfig
from cachewarm_infra.nag import add_checks
from cachewarm_infra.stack import CachewarmStack


def build_app(app: cdk.App | None = None) -> tuple[cdk.App, CachewarmStack]:
    """Create the app and its stack, with cdk-nag registered. Tests call this too."""
    app = app or cdk.App()
    config = InfraConfig.from_context(app.node.try_get_context)
    # Set by the CDK CLI from the credentials it finds. Without credentials the stack is
    # environment-agnostic, which is what offline synth needs.
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = os.environ.get("CDK_DEFAULT_REGION")
    env = cdk.Environment(account=account, region=region) if account and region else None
    stack = CachewarmStack(
        app,
        config.stack_name,
        config=config,
        env=env,
        description=f"cachewarm ({config.mode.value}): ElastiCache Redis, DynamoDB Restaurants, Celery on ECS",
    )
    add_checks(app)
    return app, stack


def main() -> int:
    try:
        app, _ = build_app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())

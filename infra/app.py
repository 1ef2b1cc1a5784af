#!/usr/bin/env python3
"""CDK entry point, run by cdk.json: ``npx cdk synth`` / ``npx cdk deploy`` from this directory.

Context keys: cachewarm_infra.config.CONTEXT_KEYS, described in docs/deploying.md.
"""

import sys

from cachewarm_infra.app import main

if __name__ == "__main__":
    sys.exit(main())

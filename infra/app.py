#!/usr/bin/env python3
"""CDK entry point, run by cdk.json: ``npx cdk synth`` / ``npx cdk deploy`` from this directory.

Context keys: cachewarm_infra.config.CONTEXT_KEYS, described in docs/deploying.md.
"""

import sys
from pathlib import Path

# The app derives the table schema and the containers' variables from the core (cachewarm.schema,
# cachewarm.settings: plain Python). The venv has it installed; a bare python3 finds it in the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from cachewarm_infra.app import main

if __name__ == "__main__":
    sys.exit(main())

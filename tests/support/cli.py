"""The installed ``cachewarm`` console script, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devstack.localstack import PROJECT_ROOT

#: The venv's bin directory: ``cachewarm`` and ``celery`` as installed.
BIN = Path(sys.executable).parent


def run_cli(*args: str, env: dict[str, str], timeout: float = 120, input: str | None = None):
    """Run ``cachewarm *args`` with ``env`` from the project root; return the CompletedProcess."""
    return subprocess.run(
        [str(BIN / "cachewarm"), *args], env=env, capture_output=True, text=True, timeout=timeout,
        input=input, cwd=PROJECT_ROOT,
    )


def generate(cli, env: dict[str, str], path: Path, restaurants: int, reviews: int = 20, seed: int = 7) -> int:
    """``cachewarm generate`` a sample file at ``path``; return its line count."""
    done = cli("generate", "-o", str(path), "--restaurants", str(restaurants), "--reviews-per-restaurant",
               str(reviews), "--seed", str(seed), env=env)
    assert done.returncode == 0, done.stderr
    return sum(1 for _ in path.open("rb"))

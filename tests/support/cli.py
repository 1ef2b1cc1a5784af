"""The installed ``cachewarm`` console script, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devstack import aws_call_log, aws_calls
from devstack.localstack import PROJECT_ROOT

#: The venv's bin directory: ``cachewarm`` and ``celery`` as installed.
BIN = Path(sys.executable).parent


def cli_command(*args: str) -> list[str]:
    """``cachewarm *args``: the installed script's entry point, with its AWS calls recorded.

    :mod:`devstack.aws_calls` runs the entry point (``python -P -m devstack.aws_calls cachewarm ...``);
    give the command :func:`recording_env` so that it knows where to record.
    """
    return aws_calls.command([str(BIN / "cachewarm"), *args])


def recording_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus the session's AWS call log (tests/infra/test_permissions.py reads it)."""
    return aws_call_log.environ(env)


def run_cli(*args: str, env: dict[str, str], timeout: float = 120, input: str | None = None, record: bool = True):
    """Run ``cachewarm *args`` with ``env`` from the project root; return the CompletedProcess.

    Its AWS calls are recorded (:func:`cli_command`); ``record=False`` runs the console script itself.
    """
    command = cli_command(*args) if record else [str(BIN / "cachewarm"), *args]
    return subprocess.run(
        command, env=recording_env(env) if record else env, capture_output=True, text=True, timeout=timeout,
        input=input, cwd=PROJECT_ROOT,
    )


def generate(cli, env: dict[str, str], path: Path, restaurants: int, reviews: int = 20, seed: int = 7) -> int:
    """``cachewarm generate`` a sample file at ``path``; return its line count."""
    done = cli("generate", "-o", str(path), "--restaurants", str(restaurants), "--reviews-per-restaurant",
               str(reviews), "--seed", str(seed), env=env)
    assert done.returncode == 0, done.stderr
    return sum(1 for _ in path.open("rb"))

"""Shell tests: commands imported from their modules and run with typer's CliRunner.

Every test starts from an environment without the project's settings (so the
defaults apply and nothing points at a real stack) and with forgotten wiring.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

import cachewarm
from cachewarm.settings import ENV_VARS


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch) -> Iterator[None]:
    """No project setting from the caller's environment; settings and clients rebuilt per test."""
    for name in (*ENV_VARS.values(), "AWS_DEFAULT_REGION", "REDIS_HOSTNAME", "FLOWER_BASIC_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    cachewarm.reset()
    yield
    cachewarm.reset()


@pytest.fixture
def runner() -> CliRunner:
    """typer's CliRunner; ``result.stdout`` and ``result.stderr`` are kept apart."""
    return CliRunner()


@pytest.fixture
def run_main(monkeypatch, capsys):
    """``run_main(*argv)`` runs the console script's ``main()`` in-process: (exit code, stdout, stderr)."""
    from cachewarm_cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["cachewarm", *argv])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run

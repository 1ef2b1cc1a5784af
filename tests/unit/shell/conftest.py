"""Shell tests: commands imported from their modules and run with typer's CliRunner.

The clean environment and forgotten wiring come from tests/unit/conftest.py.
"""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner


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

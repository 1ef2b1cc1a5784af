"""Consoles shared by CLI commands: results on stdout, diagnostics on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

#: Control characters (C0, DEL, C1) and bidirectional overrides, shown as escapes instead.
_UNPRINTABLE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))} | {
    c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
}

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """One JSON document on stdout, unstyled, for scripts."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def printable(text: object) -> str:
    """``text`` with control characters as visible escapes (``\\x1b``), for names in human output.

    A restaurant name is data: it must not recolour the terminal, move the
    cursor, or lose a carriage return silently and so look like another name.
    ``--json`` output keeps names exact.
    """
    return str(text).translate(_UNPRINTABLE)


def usage_error(message: str) -> NoReturn:
    """Bad usage: ``error: <message>`` in one line on stderr, exit code 2."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(2)

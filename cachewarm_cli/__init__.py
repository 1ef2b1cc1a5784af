"""The ``cachewarm`` command line. Each command group lives in its own module.

Every module has a module-level ``app = typer.Typer()`` whose commands are plain
module-level functions, so tests and tools import them. Here they are composed:
a group module (``table``, ``bench``, ``stack``) is added under its name; the
others are added without one, which makes Typer lift their commands (``load``,
``get``, ...) and groups (``review``) to the top level.

No traceback reaches a user: project errors print one line and exit with their
code (2 for a bad setting), anything unexpected prints one line and exits 1
(set ``CACHEWARM_DEBUG=1`` to see the traceback).
"""

from __future__ import annotations

import os
import sys

import typer

from cachewarm.errors import CachewarmError
from cachewarm.masking import mask_text
from cachewarm_cli import bench, demo, exporter, feed, load, read, stack, stats, table, warm, write
from cachewarm_cli.output import err_console

app = typer.Typer(
    name="cachewarm",
    help="Cache warmer and workers for a DynamoDB table behind Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(table.app, name="table")
app.add_typer(load.app)  # load, generate
app.add_typer(read.app)  # get
app.add_typer(warm.app)  # warm
app.add_typer(write.app)  # invalidate, review add
app.add_typer(bench.app, name="bench")
app.add_typer(stats.app)  # stats
app.add_typer(exporter.app)  # exporter
app.add_typer(stack.app, name="stack")
app.add_typer(feed.app, name="feed")
app.add_typer(demo.app)  # demo


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except CachewarmError as exc:
        err_console.print(f"error: {mask_text(str(exc))}", markup=False, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # last resort: one line, not a traceback
        if os.environ.get("CACHEWARM_DEBUG"):
            raise
        err_console.print(
            f"error: unexpected {type(exc).__name__}: {mask_text(str(exc))} (set CACHEWARM_DEBUG=1 for details)",
            markup=False, highlight=False,
        )
        sys.exit(1)

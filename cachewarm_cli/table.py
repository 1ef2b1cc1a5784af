"""``cachewarm table create|delete``."""

from __future__ import annotations

import typer

from cachewarm_cli.output import console

app = typer.Typer(help="Create or delete the DynamoDB table.", no_args_is_help=True)


@app.command("create")
def create() -> None:
    """Create the table with GSI1 (idempotent); wait until it is ACTIVE."""
    from cachewarm import service
    from cachewarm.settings import get_settings

    settings = get_settings()
    created = service.repository(settings).create_table(wait=True)
    state = "created" if created else "already exists"
    console.print(f"table {settings.table_name} {state}; ACTIVE", markup=False)


@app.command("delete")
def delete() -> None:
    """Delete the table."""
    from cachewarm import service
    from cachewarm.settings import get_settings

    settings = get_settings()
    deleted = service.repository(settings).delete_table(wait=True)
    console.print(f"table {settings.table_name} {'deleted' if deleted else 'did not exist'}", markup=False)

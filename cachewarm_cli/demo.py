"""``cachewarm demo`` (``make demo``)."""

from __future__ import annotations

import typer

from cachewarm_cli.output import console


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command."""

    @app.command("demo")
    def demo(
        restaurants: int = typer.Option(300, min=5, help="Restaurants to generate."),
        sample: int = typer.Option(50, min=1, help="Restaurants the benchmark samples."),
        seed: int = typer.Option(42, help="Generator seed."),
    ) -> None:
        """Run the whole system on the embedded local stack, then stop what it started."""
        from cachewarm_cli.demo_run import run_demo

        raise typer.Exit(run_demo(console, restaurants=restaurants, sample=sample, seed=seed))

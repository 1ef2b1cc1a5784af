"""``cachewarm get NAME``: one read through the cache."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from cachewarm_cli.output import console, err_console, print_json, usage_error

app = typer.Typer()


@app.command("get")
def get(
    name: str = typer.Argument(..., help="Restaurant name, exactly as stored."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Read a restaurant summary through the cache; say whether it came from cache or db."""
    from cachewarm.service import fetch_restaurant_summary
    from cachewarm.settings import get_settings

    if not name:
        usage_error("NAME must be a restaurant name, not empty")
    result = fetch_restaurant_summary(name, get_settings())
    if as_json:
        print_json(result.to_dict())
    elif result.summary is not None:
        show_summary(result)
    if result.summary is None:
        err_console.print(f"restaurant {name!r} not found", markup=False)
        raise typer.Exit(1)


def show_summary(result) -> None:
    """Render a summary for a person."""
    restaurant = result.summary.restaurant
    console.print(
        f"[bold]{escape(str(restaurant.get('name')))}[/] · {escape(str(restaurant.get('cuisine', '')))}"
        f" · {escape(str(restaurant.get('address', '')))}"
    )
    stars = " ".join(
        f"{n}★ {restaurant.get(f'{word}_stars', 0)}"
        for n, word in ((5, "five"), (4, "four"), (3, "three"), (2, "two"), (1, "one"))
    )
    console.print(stars)
    table = Table("created_at", "user", "rating", "review")
    for review in result.summary.reviews:
        text = str(review.get("review", "")).replace("\n", " ")
        table.add_row(
            escape(str(review.get("created_at", ""))), escape(str(review.get("username", ""))),
            str(review.get("rating", "")), escape(text[:80] + ("…" if len(text) > 80 else "")),
        )
    console.print(table)
    console.print(f"source: {result.source} ({result.cache}) in {result.latency_ms:.2f} ms")

"""``cachewarm review add`` and ``cachewarm invalidate``."""

from __future__ import annotations

import typer

from cachewarm_cli.output import console, err_console, print_json, usage_error

app = typer.Typer()
review = typer.Typer(help="Write reviews.", no_args_is_help=True)


@review.command("add")
def add(
    restaurant: str = typer.Argument(..., help="Restaurant name."),
    user: str = typer.Option(..., "--user", help="Username of the reviewer."),
    rating: int = typer.Option(..., "--rating", min=1, max=5, help="1 to 5 stars."),
    text: str = typer.Option(..., "--text", help="The review text."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Write a review and update star counts in one transaction; invalidate the summary before returning."""
    from redis.exceptions import RedisError

    from cachewarm import service
    from cachewarm.reviews import add_review
    from cachewarm.settings import get_settings

    settings = get_settings()
    try:
        added = add_review(service.engine(settings), service.repository(settings), restaurant,
                           username=user, rating=rating, text=text)
    except RedisError as exc:
        err_console.print(f"review saved, but the cache could not be invalidated ({type(exc).__name__}); "
                          "invalidate_stale repairs it within a minute", markup=False)
        raise typer.Exit(1) from None
    if as_json:
        print_json({"review": added.review, "version": added.version, "invalidated": added.invalidated})
    else:
        console.print(f"review {added.review['id']} added to {restaurant} (version {added.version}); "
                      "summary invalidated", markup=False)


@app.command("invalidate")
def invalidate(
    names: list[str] = typer.Argument(None, help="Exact restaurant names (never patterns)."),
    stale: bool = typer.Option(False, "--stale", help="Only summaries whose source version changed."),
    all_: bool = typer.Option(False, "--all", help="Every cached summary under our prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Remove cached summaries: by exact name, --stale (version check) or --all (SCAN + UNLINK)."""
    from cachewarm import invalidation, service
    from cachewarm.settings import get_settings

    chosen = sum([bool(names), stale, all_])
    if chosen != 1:
        usage_error("give names, or --stale, or --all (exactly one)")
    settings = get_settings()
    engine = service.engine(settings)
    if names:
        out = {"mode": "names", "removed": invalidation.invalidate_names(engine, names)}
    elif all_:
        out = {"mode": "all", "removed": invalidation.invalidate_all(engine)}
    else:
        report = invalidation.invalidate_stale(engine, service.repository(settings))
        out = {"mode": "stale", "removed": len(report.invalidated), "scanned": report.scanned,
               "names": report.invalidated}
    if as_json:
        print_json(out)
    else:
        console.print(f"invalidated {out['removed']} cached summar{'y' if out['removed'] == 1 else 'ies'}",
                      markup=False)


# The root adds this app without a name, which lifts `invalidate` and the `review` group to the top level.
app.add_typer(review, name="review")

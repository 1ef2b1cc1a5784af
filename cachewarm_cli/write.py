"""``cachewarm review add`` and ``cachewarm invalidate``."""

from __future__ import annotations

import typer

from cachewarm_cli.output import console, err_console, print_json, printable, usage_error

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
        longest = round(settings.cache_ttl * (1 + settings.cache_ttl_jitter))
        err_console.print(f"review saved, but the cache could not be invalidated ({type(exc).__name__}); "
                          f"the cached summary may be stale until it expires (at most {longest}s)", markup=False)
        raise typer.Exit(1) from None
    if as_json:
        print_json({"review": added.review, "version": added.version, "invalidated": added.invalidated})
    else:
        console.print(f"review {added.review['id']} added to {restaurant} (version {added.version}); "
                      "summary invalidated", markup=False)


@app.command("invalidate")
def invalidate(
    names: list[str] = typer.Argument(None, help="Exact restaurant names (never patterns)."),
    stale: bool = typer.Option(False, "--stale", help="One audit pass: re-read the next cached summaries of the "
                               "rotation from DynamoDB and remove those that differ."),
    sample: int = typer.Option(None, "--sample", min=1, max=10_000,
                               help="With --stale: summaries to audit (default AUDIT_SAMPLE_SIZE)."),
    all_: bool = typer.Option(False, "--all", help="Every cached summary under our prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Remove cached summaries: by exact name, --stale (one audit pass) or --all (SCAN + UNLINK)."""
    from cachewarm import invalidation, service
    from cachewarm.settings import get_settings

    chosen = sum([bool(names), stale, all_])
    if chosen != 1:
        usage_error("give names, or --stale, or --all (exactly one)")
    if sample is not None and not stale:
        usage_error("--sample goes with --stale")
    settings = get_settings()
    engine = service.engine(settings)
    if names:
        out = {"mode": "names", "removed": invalidation.invalidate_names(engine, names)}
    elif all_:
        out = {"mode": "all", "removed": invalidation.invalidate_all(engine)}
    else:
        from cachewarm.audit import run_audit

        report = run_audit(engine, service.repository(settings), sample or settings.audit_sample)
        out = {"mode": "stale", "removed": len(report.stale), **report.to_dict()}
    if as_json:
        print_json(out)
        return
    if stale:
        fraction = "-" if out["stale_fraction"] is None else f"{out['stale_fraction']:.1%}"
        console.print(f"audited {out['checked']} cached summar{'y' if out['checked'] == 1 else 'ies'}: "
                      f"{len(out['stale'])} stale ({fraction}), invalidated; "
                      f"{out['scan_calls']} SCAN call{'' if out['scan_calls'] == 1 else 's'}, "
                      f"{out['seconds']:.3f}s{'; the rotation completed a cycle' if out['wrapped'] else ''}",
                      markup=False)
        for name in out["stale"]:
            console.print(f"  stale: {printable(name)}", markup=False)
        return
    console.print(f"invalidated {out['removed']} cached summar{'y' if out['removed'] == 1 else 'ies'}",
                  markup=False)


# The root adds this app without a name, which lifts `invalidate` and the `review` group to the top level.
app.add_typer(review, name="review")

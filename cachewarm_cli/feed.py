"""``cachewarm feed follow``: the local change feed (the Lambda's job on AWS).

Reads the table's stream from ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS`` (the dynalite
launcher serves it locally) and invalidates what other applications wrote, with
the handler the Lambda function runs. ``make up`` runs it from the Procfile.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import typer

from cachewarm_cli.output import console

app = typer.Typer(help="Follow the table's change feed (DynamoDB Streams) and invalidate what changed.",
                  no_args_is_help=True)


@app.command("follow")
def follow(
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing per batch."),
) -> None:
    """Invalidate the summaries that writes name, as they arrive (Ctrl-C stops)."""
    from cachewarm import service
    from cachewarm.change_capture import handle_records
    from cachewarm.clients import dynamodb_client, streams_client
    from cachewarm.settings import get_settings
    from cachewarm.stream_poller import StreamFollower

    settings = get_settings()
    engine = service.engine(settings)

    def handle(records) -> list[str]:
        outcome = handle_records(records, engine, hold_off_ms=settings.change_hold_off_ms)
        if not quiet:
            lag = f", lag max {max(outcome.lag_ms):.0f} ms" if outcome.lag_ms else ""
            failed = f", {len(outcome.failed)} to retry ({outcome.error})" if outcome.failed else ""
            console.print(f"feed: {outcome.records} records, {outcome.ignored} ignored, "
                          f"{len(outcome.names)} names invalidated{lag}{failed}", markup=False, soft_wrap=True)
        return outcome.failed

    follower = StreamFollower(streams_client(settings), dynamodb_client(settings), settings.table_name, handle,
                              poll_seconds=settings.feed_poll_seconds)
    stop = threading.Event()
    # honcho and docker stop processes with SIGTERM: finish the batch in hand, then exit 0.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(f"feed: following table {settings.table_name}'s stream", markup=False)
    with contextlib.suppress(KeyboardInterrupt):
        follower.run(stop)

"""``cachewarm warm``: enqueue warming on the workers, optionally wait for the report."""

from __future__ import annotations

import time

import typer

from cachewarm_cli.output import console, print_json, printable, usage_error

#: Names per ``cachewarm.warm_names`` task (the tasks take names in bounded chunks).
CHUNK = 100

app = typer.Typer()


@app.command("warm")
def warm(
    names: list[str] = typer.Argument(None, help="Restaurant names to warm."),
    top: int = typer.Option(0, "--top", min=0, help="Warm the K hottest names instead."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the workers and report what was warmed."),
    timeout: float = typer.Option(120.0, help="Seconds to wait with --wait."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Enqueue ``cachewarm.warm_names`` for NAME... or for the --top K hottest names."""
    from cachewarm import service
    from cachewarm.batching import chunked
    from cachewarm.settings import get_settings

    if bool(names) == bool(top):
        usage_error("give names, or --top K (one of the two)")
    settings = get_settings()
    if top:
        names = [name for name, _ in service.engine(settings).hot.top(top, time.time())]
        if not names:
            console.print("no reads recorded yet: nothing is hot", markup=False)
            raise typer.Exit(0)

    from cachewarm_cli.broker import send_all
    from workers import app as celery_app

    results = send_all(celery_app, "cachewarm.warm_names", ({"args": [chunk]} for chunk in chunked(names, CHUNK)))
    if not wait:
        if as_json:
            print_json({"task_ids": [r.id for r in results], "names": len(names)})
        else:
            for result in results:
                console.print(f"queued cachewarm.warm_names {result.id}", markup=False)
        return
    warmed, missing = collect(results, timeout)
    if as_json:
        print_json({"warmed": warmed, "not_found": missing})
    else:
        console.print(f"warmed {len(warmed)}: {', '.join(map(printable, warmed))}", markup=False, soft_wrap=True)
        if missing:
            console.print(f"not found {len(missing)}: {', '.join(map(printable, missing))}", markup=False,
                          soft_wrap=True)


def collect(results, timeout: float) -> tuple[list[str], list[str]]:
    """Follow each chunk task in turn within one ``timeout``; the names warmed and the names not found."""
    from workers.progress import TaskFailed, TaskTimeout, follow

    deadline = time.monotonic() + timeout
    warmed: list[str] = []
    missing: list[str] = []
    for result in results:
        try:
            report = follow(result, _ignore, timeout=max(0.1, deadline - time.monotonic()))
        except TaskTimeout as exc:
            # The whole --timeout in the message, not what was left of it for this chunk.
            raise type(exc)(exc.task_id, timeout) from None
        except TaskFailed as exc:
            # As before the follower existed: the worker's exception, reported by main() in one line.
            raise (exc.error if isinstance(exc.error, BaseException) else exc) from None
        warmed += report["warmed"]
        missing += report["not_found"]
    return warmed, missing


def _ignore(meta: dict) -> None:
    """warm --wait prints the report only; a chunk's progress is not shown."""

"""``cachewarm stack up|run``: the embedded local stack (redis-server + dynalite)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import typer

from cachewarm.masking import mask_url
from cachewarm_cli.output import console, usage_error

#: The login `stack up` generates for Flower when FLOWER_BASIC_AUTH is not set.
GENERATED_FLOWER_USER = "admin"


def stack_environ(extra: dict[str, str]) -> dict[str, str]:
    """The current environment plus the stack's, with this venv's bin first on PATH."""
    env = dict(os.environ)
    env.update(extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


app = typer.Typer(help="Run the embedded local stack (redis-server + dynalite).", no_args_is_help=True)


@app.command("up")
def up(
    procfile: Path = typer.Option(Path("Procfile"), help="Processes to run on top of the stack."),
    create_table: bool = typer.Option(True, help="Create the table if it does not exist."),
) -> None:
    """Start the stack and the Procfile's processes in the foreground; Ctrl-C stops everything."""
    from honcho.environ import parse_procfile
    from honcho.manager import Manager
    from honcho.printer import Printer

    from devstack.localstack import LocalStack

    if not procfile.exists():
        usage_error(f"{procfile} not found")
    processes = parse_procfile(procfile.read_text()).processes
    stack = LocalStack.start()
    try:
        env = stack_environ(stack.env)
        runs_flower = any(name == "flower" or " flower" in command for name, command in processes.items())
        generated = _flower_login(env) if runs_flower else None
        from cachewarm.settings import Settings

        settings = Settings.from_env(env)  # a bad value: one line naming it, exit 2
        _announce(stack)
        if runs_flower:
            _announce_flower(settings, generated)
        if create_table:
            _create_table(env)
        manager = Manager(Printer(sys.stdout))
        for name, command in processes.items():
            manager.add_process(name, command, env=env)
        manager.loop()
        code = manager.returncode or 0
    finally:
        stack.stop()
    raise typer.Exit(code if code not in (-2, 130) else 0)


@app.command(
    "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run(ctx: typer.Context) -> None:
    """Run a command with the stack up (e.g. ``cachewarm stack run -- cachewarm get X``)."""
    from devstack.localstack import LocalStack

    if not ctx.args:
        usage_error("give a command to run after --")
    stack = LocalStack.start()
    try:
        code = subprocess.call(ctx.args, env=stack_environ(stack.env))
    finally:
        stack.stop()
    raise typer.Exit(code)


def _announce(stack) -> None:
    # Every URL is masked: a reused REDIS_URL may carry a password or AUTH token.
    for service in stack.started:
        console.print(f"started {service.name} at {_masked(service.url)} (log {service.log_path})", markup=False)
    for reused in stack.reused:
        console.print(f"reusing {_masked(reused)}", markup=False)
    exports = " ".join(f"{k}={_masked(v)}" for k, v in stack.env.items() if not k.startswith("AWS_SECRET"))
    console.print(f"export {exports}", markup=False, soft_wrap=True)


def _masked(text: str) -> str:
    """``text`` with the password (userinfo or ``?password=``) of every URL in it masked."""
    return " ".join(mask_url(word) if "://" in word else word for word in text.split(" "))


def _flower_login(env: dict[str, str]) -> str | None:
    """Generate Flower's password into ``env`` unless FLOWER_BASIC_AUTH is set; return it if generated."""
    if env.get("FLOWER_BASIC_AUTH", "").strip():
        return None
    password = secrets.token_urlsafe(18)
    env["FLOWER_BASIC_AUTH"] = f"{GENERATED_FLOWER_USER}:{password}"
    return password


def _announce_flower(settings, generated: str | None) -> None:
    """Flower's URL and login, printed once; a generated password is shown only here."""
    host = settings.flower_address
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{settings.flower_port}/"
    if generated is not None:
        login = (f"user {GENERATED_FLOWER_USER} password {generated} (generated for this run; "
                 "set FLOWER_BASIC_AUTH=user:password to choose your own)")
    else:
        users = ", ".join(item.partition(":")[0] for item in settings.flower_logins)
        login = f"user {users} (password from FLOWER_BASIC_AUTH)"
    console.print(f"flower {url} {login}", markup=False, soft_wrap=True)


def _create_table(env: dict[str, str]) -> None:
    from cachewarm import service
    from cachewarm.settings import Settings

    settings = Settings.from_env(env)
    service.repository(settings).create_table(wait=True)

"""Which AWS API calls a process makes, recorded for the permission check (tests/infra/test_permissions.py).

Test instrumentation, like :mod:`devstack.ledger`: it is loaded only into processes that the test
fixtures start, and records only when ``CACHEWARM_AWS_CALL_LOG`` names a file (the fixtures name their
session's log and read it back: :mod:`devstack.aws_call_log`). The core knows nothing of it. Each
process appends one JSON line per distinct call it makes::

    {"kind": "worker", "service": "dynamodb", "operation": "Query",
     "resource": "table/Restaurants-1a2b/index/GSI1", "via": "cachewarm.warm_names"}

``kind`` is what runs the process on AWS: ``worker``, ``beat``, ``flower``, ``cli`` (the ``cachewarm``
console script: a one-off task from the worker task definition), ``feed`` (``cachewarm feed follow``,
the local stand-in for the change-capture event source mapping) or ``lambda`` (the change-capture
handler). ``CACHEWARM_PROCESS_KIND`` sets it; otherwise it is derived from ``sys.argv``. ``service``
and ``operation`` are botocore's names (``dynamodbstreams``, ``GetRecords``). ``resource`` is what the
call names: ``table/NAME[/index/INDEX]``, a stream ARN (``GetRecords`` inherits the stream of its
shard iterator), ``arn:aws:s3:::BUCKET[/KEY]`` or a secret id; absent for calls on no resource
(``ListStreams``). A transaction is one line per table and ``part`` (``Put``, ``Update``, ...), since
IAM authorises each part as its own action. ``via`` is the Celery task or the command that made it.
A process that starts recording also writes ``{"kind": ..., "event": "start", "pid": ...}``, so a
kind that called nothing is still seen to have run.

How: a ``provide-client-params`` handler, appended to ``botocore.handlers.BUILTIN_HANDLERS`` so that
every botocore session the process creates registers it (the project builds its clients on fresh
boto3 sessions, not on the default one); appended when botocore is first imported, so a process that
never calls AWS does not import it. It sees each API call once (not each retry) before it is
sent, so calls that fail are recorded too: IAM is asked either way. Each process writes a call the
first time it makes it; a line is one ``write`` on an ``O_APPEND`` descriptor under ``flock``, so
processes writing at once never interleave. A failing write never fails the call.

Loading it:

* celery workers: ``--include=devstack.aws_calls`` (:func:`command` adds it);
* any other console script (``celery ... beat``, ``celery ... flower``, ``cachewarm ...``):
  ``python -P -m devstack.aws_calls SCRIPT[=MODULE:FUNCTION] ARGS...`` runs the installed script's entry
  point with the recorder on (:func:`command` builds it); processes it spawns (the loader's writer
  processes) load it again as their main module;
* a bare interpreter (the bundled Lambda handler): load this file by path; it imports only the
  standard library and botocore (nothing of the project: :mod:`devstack.aws_call_log` imports this
  module, never the other way round);
* in-process, for unit-level recordings: :func:`recording`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

LOG_VAR = "CACHEWARM_AWS_CALL_LOG"
KIND_VAR = "CACHEWARM_PROCESS_KIND"
KINDS = ("worker", "beat", "flower", "cli", "feed", "lambda")
#: The celery subcommands that are deployed processes.
_CELERY_KINDS = ("worker", "beat", "flower")
#: Shard iterators remembered per process, to name the stream of a GetRecords call.
_MAX_ITERATORS = 10_000


def kind_of(argv: list[str], environ: Mapping[str, str] | None = None) -> str | None:
    """The process kind: ``CACHEWARM_PROCESS_KIND``, or what ``argv`` runs; None for anything else."""
    environ = os.environ if environ is None else environ
    if environ.get(KIND_VAR):
        kind = environ[KIND_VAR]
        if kind not in KINDS:
            raise ValueError(f"{KIND_VAR}={kind!r}: expected one of {', '.join(KINDS)}")
        return kind
    if not argv:
        return None
    script = Path(argv[0]).name
    if script == "celery":
        return next((arg for arg in argv[1:] if arg in _CELERY_KINDS), None)
    if script == "cachewarm":
        return "feed" if argv[1:3] == ["feed", "follow"] else "cli"
    return None


# --- recording ------------------------------------------------------------------------------------


class Recorder:
    """The calls of one process (or one in-process recording), each kept and written once."""

    def __init__(self, kind: str, path: Path | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown process kind {kind!r}")
        self.kind = kind
        self.path = path
        self.calls: list[dict[str, str]] = []
        self._seen: set[tuple[tuple[str, str], ...]] = set()
        self._lock = threading.Lock()
        self._iterators: dict[str, str] = {}

    def add(self, record: dict[str, str]) -> None:
        key = tuple(sorted(record.items()))
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            self.calls.append(record)
        if self.path is not None:
            with contextlib.suppress(OSError):  # bookkeeping must never fail the call
                append(self.path, record)

    def stream_of(self, iterator: str | None) -> str | None:
        return self._iterators.get(iterator) if iterator else None

    def remember_iterator(self, iterator: str | None, stream: str | None) -> None:
        if iterator and stream:
            with self._lock:
                if len(self._iterators) >= _MAX_ITERATORS:
                    self._iterators.clear()
                self._iterators[iterator] = stream


_active: Recorder | None = None
_STREAM_KEY = "cachewarm_aws_calls_stream"


def append(path: Path, record: Mapping[str, object]) -> None:
    """Append one JSON line to ``path``: one write on O_APPEND, under an exclusive lock."""
    import fcntl

    line = (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)  # releases the lock


def resources(service: str, operation: str, params: Mapping[str, Any],
              stream_of: Any = lambda iterator: None) -> list[tuple[str | None, str | None]]:
    """What one call names, as ``(resource, part)`` pairs (see the module's docstring)."""
    if service == "dynamodb":
        if "TransactItems" in params:
            found: list[tuple[str | None, str | None]] = []
            for item in params.get("TransactItems") or []:
                for part, body in item.items():
                    pair = (f"table/{body.get('TableName')}", part)
                    if pair not in found:
                        found.append(pair)
            return found
        if "RequestItems" in params:
            return [(f"table/{name}", None) for name in params.get("RequestItems") or {}]
        if params.get("TableName"):
            table = f"table/{params['TableName']}"
            return [(f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table, None)]
        return [(None, None)]
    if service == "dynamodbstreams":
        if params.get("StreamArn"):
            return [(params["StreamArn"], None)]
        if params.get("ShardIterator"):
            return [(stream_of(params["ShardIterator"]) or "stream/unknown", None)]
        return [(None, None)]
    if service == "s3":
        bucket, key = params.get("Bucket"), params.get("Key")
        if bucket and key:
            return [(f"arn:aws:s3:::{bucket}/{key}", None)]
        return [(f"arn:aws:s3:::{bucket}" if bucket else None, None)]
    if service == "secretsmanager":
        return [(params.get("SecretId"), None)]
    return [(None, None)]


def _via() -> str | None:
    """The Celery task running in this thread, else the click command (celery's or cachewarm's)."""
    state = sys.modules.get("celery._state")
    if state is not None:
        task = state.get_current_task()
        if task is not None and getattr(task, "name", None):
            return str(task.name)
    # cachewarm's Typer carries its own copy of click; celery uses click itself.
    for name in ("typer._click.globals", "click.globals"):
        module = sys.modules.get(name)
        context = module.get_current_context(silent=True) if module is not None else None
        if context is not None:
            return str(context.command_path)
    return None


def _on_params(params: Mapping[str, Any] | None = None, model: Any = None, context: dict | None = None,
               **_: Any) -> None:
    """``provide-client-params``: record the call; return None so the parameters stay as they are."""
    recorder = _active
    if recorder is None or model is None:
        return None
    with contextlib.suppress(Exception):  # the recorder must never break the call it watches
        params = params or {}
        service, operation = model.service_model.service_name, model.name
        via = _via()
        for resource, part in resources(service, operation, params, recorder.stream_of):
            record = {"kind": recorder.kind, "service": service, "operation": operation}
            if resource is not None:
                record["resource"] = resource
            if part is not None:
                record["part"] = part
            if via is not None:
                record["via"] = via
            recorder.add(record)
        if service == "dynamodbstreams" and context is not None:
            context[_STREAM_KEY] = params.get("StreamArn") or recorder.stream_of(params.get("ShardIterator"))
    return None


def _after_call(parsed: Mapping[str, Any] | None = None, model: Any = None, context: dict | None = None,
                **_: Any) -> None:
    """``after-call``: remember which stream a returned shard iterator reads."""
    recorder = _active
    if recorder is None or model is None or context is None or not parsed:
        return
    with contextlib.suppress(Exception):
        if model.service_model.service_name == "dynamodbstreams":
            stream = context.get(_STREAM_KEY)
            recorder.remember_iterator(parsed.get("ShardIterator"), stream)
            recorder.remember_iterator(parsed.get("NextShardIterator"), stream)


_on_params._cachewarm_aws_calls = True  # type: ignore[attr-defined]
_after_call._cachewarm_aws_calls = True  # type: ignore[attr-defined]
_HANDLERS = (("provide-client-params", _on_params), ("after-call", _after_call))


def _add_handlers(handlers: Any) -> None:
    """Append the handlers to the list every new botocore session registers (once)."""
    if not any(getattr(spec[1], "_cachewarm_aws_calls", False) for spec in handlers.BUILTIN_HANDLERS):
        handlers.BUILTIN_HANDLERS.extend(_HANDLERS)


class _AfterImport:
    """A meta path finder that calls ``then(module)`` once ``name`` has been imported, then steps aside.

    So that a process which never calls AWS does not pay for importing botocore (about 0.1 s).
    """

    def __init__(self, name: str, then: Any):
        self.name, self.then = name, then

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            execute, then = spec.loader.exec_module, self.then

            def exec_module(module: Any) -> None:
                execute(module)
                then(module)

            spec.loader.exec_module = exec_module
        return spec


def _register() -> None:
    """Make every botocore session register the handlers (and the default boto3 session, if made)."""
    handlers = sys.modules.get("botocore.handlers")
    if handlers is None:
        if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
            sys.meta_path.insert(0, _AfterImport("botocore.handlers", _add_handlers))
        return
    _add_handlers(handlers)
    boto3 = sys.modules.get("boto3")
    default = getattr(boto3, "DEFAULT_SESSION", None) if boto3 is not None else None
    if default is not None:
        for event, handler in _HANDLERS:
            default._session.register(event, handler, unique_id=f"cachewarm-aws-calls-{event}")


def install(kind: str, path: Path | None) -> Recorder:
    """Record this process's calls as ``kind`` into ``path`` from now on."""
    global _active
    _register()
    _active = Recorder(kind, path)
    if path is not None:
        with contextlib.suppress(OSError):
            append(path, {"kind": kind, "event": "start", "pid": os.getpid()})
    return _active


@contextlib.contextmanager
def recording(kind: str) -> Iterator[Recorder]:
    """Record the calls made in this process inside the block (in memory); the previous recorder after it.

    Clients built before the block keep their sessions; build the ones to watch inside it.
    """
    global _active
    previous = _active
    recorder = install(kind, None)
    try:
        yield recorder
    finally:
        _active = previous


def activate_from_environ(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Recorder | None:
    """Install the recorder if ``CACHEWARM_AWS_CALL_LOG`` is set and the process is of a known kind."""
    environ = os.environ if environ is None else environ
    if not environ.get(LOG_VAR):
        return None
    kind = kind_of(sys.argv if argv is None else argv, environ)
    if kind is None:
        return None
    if _active is not None and _active.kind == kind:
        return _active
    return install(kind, Path(environ[LOG_VAR]))


# --- for the test fixtures --------------------------------------------------------------------------


def command(argv: list[str]) -> list[str]:
    """``argv`` (an installed console script and its arguments) as a command that records its AWS calls.

    A celery worker gets ``--include=devstack.aws_calls`` (merged into an ``--include`` already
    given: Celery reads only the last one); anything else runs under ``python -P -m devstack.aws_calls``,
    told the script's entry point (looked up here once, not in every process).
    """
    script = Path(argv[0])
    if script.name == "celery" and "worker" in argv[1:]:
        extra = "devstack.aws_calls"
        for index, arg in enumerate(argv):
            if arg.startswith("--include="):
                return [*argv[:index], f"{arg},{extra}", *argv[index + 1:]]
        return [*argv, f"--include={extra}"]
    target = f"{script.name}={_entry_point(script.name)}"
    return [str(script.parent / "python"), "-P", "-m", "devstack.aws_calls", target, *argv[1:]]


@functools.cache
def _entry_point(script: str) -> str:
    """``module:function`` of an installed console script."""
    from importlib.metadata import entry_points

    found = list(entry_points(group="console_scripts", name=script))
    if not found:
        raise LookupError(f"no console script {script!r} is installed")
    return str(found[0].value)


def main(args: list[str] | None = None) -> None:
    """``python -m devstack.aws_calls SCRIPT[=MODULE:FUNCTION] ARGS...``: run a console script, recording.

    ``sys.argv[0]`` becomes the installed script, as if it had been run itself.
    """
    import importlib

    args = sys.argv[1:] if args is None else args
    if not args:
        sys.exit("usage: python -m devstack.aws_calls SCRIPT[=MODULE:FUNCTION] [ARGS...]")
    script, _, target = args[0].partition("=")
    module, _, function = (target or _entry_point(script)).partition(":")
    sys.argv = [str(Path(sys.executable).parent / script), *args[1:]]
    kind = kind_of(sys.argv)
    if kind is not None:
        os.environ[KIND_VAR] = kind  # processes it spawns record as the same kind
    activate_from_environ()
    # Click names the program after argv[0] only when __main__ is not a module run with -m.
    sys.modules["__main__"].__package__ = None
    sys.exit(getattr(importlib.import_module(module), function)())


if __name__ == "__main__":
    from devstack.aws_calls import main as _main

    _main()
else:
    activate_from_environ()

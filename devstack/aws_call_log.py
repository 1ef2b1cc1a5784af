"""Where the recorded AWS calls go and how they are read back: one log per test session.

The recorder (:mod:`devstack.aws_calls`) appends one JSON line per call to the file that
``CACHEWARM_AWS_CALL_LOG`` names in each recording process; this module picks that file for a test
session (:func:`begin_session`, :func:`end_session`), hands it to the processes the fixtures start
(:func:`environ`) and reads it back for the permission check (:func:`recorded_log`, :func:`read`).
Used only by the pytest process; the recording processes never import it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.aws_calls import LOG_VAR

#: Each test session records into a file of its own here (git-ignored, like all of ``.run/``) ...
LOG_DIR = Path(__file__).resolve().parent.parent / ".run" / "aws-calls"
#: ... and one that ran the real-process suites publishes it here when it finishes.
LATEST = LOG_DIR / "latest.jsonl"

# This test session's log: a file of its own, so that sessions running at once (in one checkout) never
# mix or reset each other's; set by begin_session in the pytest process.
_session: Path | None = None
_publish = False
_chosen = False


def log_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where this process's children record: ``CACHEWARM_AWS_CALL_LOG``, else this test session's log."""
    environ = os.environ if environ is None else environ
    if environ.get(LOG_VAR):
        return Path(environ[LOG_VAR])
    return _session or LATEST


def environ(env: Mapping[str, str], path: Path | None = None) -> dict[str, str]:
    """``env`` plus the log to record into (the kind is derived from the command in the child)."""
    return {**env, LOG_VAR: str(path or log_path())}


def begin_session(*, publish: bool) -> Path:
    """Give this test session a fresh log; ``publish`` it as :data:`LATEST` at :func:`end_session`.

    A session publishes when it runs the suites that start the recorded processes; a session that does
    not (say, the infra tests alone) checks the latest published log instead. ``CACHEWARM_AWS_CALL_LOG``
    names one file for every session instead (emptied by a publishing session).
    """
    global _session, _publish, _chosen
    _publish = publish
    _chosen = bool(os.environ.get(LOG_VAR))
    if _chosen:
        _session = Path(os.environ[LOG_VAR])
        if publish:
            _session.unlink(missing_ok=True)
    else:
        _session = LOG_DIR / f"session-{os.getpid()}-{time.time_ns()}.jsonl"
    return _session


def end_session() -> None:
    """Publish this session's log (or drop it, if it was not to be published)."""
    global _session
    if _session is None or _chosen:
        return
    if _publish and _session.exists():
        os.replace(_session, LATEST)
    else:
        _session.unlink(missing_ok=True)
    _session = None


def recorded_log() -> Path:
    """The log to check: this session's if it publishes, else the latest published one."""
    if _session is not None and (_publish or _chosen):
        return _session
    return Path(os.environ.get(LOG_VAR) or LATEST)


def read(path: Path | None = None) -> list[dict[str, Any]]:
    """Every recorded line: calls, and ``{"kind", "event": "start", "pid"}`` when a recording process starts.

    FileNotFoundError when nothing was recorded.
    """
    with open(path or recorded_log(), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


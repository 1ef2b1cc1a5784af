"""Queue tasks from the shell: a broker that refuses a message is one clear error, never a silent loss."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cachewarm.errors import TransportError


class PublishError(TransportError):
    """The broker refused or could not take a task message."""


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _out_of_memory(exc: BaseException) -> bool:
    return any(type(e).__name__ == "OutOfMemoryError" or "maxmemory" in str(e) for e in _chain(exc))


def _root_cause(exc: BaseException) -> BaseException:
    """The Redis or TLS error under Celery's wrappers ("Retry limit exceeded ... result store")."""
    for error in _chain(exc):
        if type(error).__module__.split(".")[0] in ("redis", "ssl"):
            return error
    return exc


def send_all(celery_app: Any, name: str, calls: Iterable[dict[str, Any]]) -> list[Any]:
    """``send_task(name, **call)`` for each call; on failure raise :class:`PublishError` saying what was queued.

    kombu reports a full Redis (``OOM command not allowed``) as an OperationalError
    naming an internal command, and Celery reports a refused password or an
    unverifiable certificate as "Retry limit exceeded ... result store backend";
    the user gets one line that names the real cause (and the way out).
    """
    from cachewarm.masking import mask_text, mask_url

    sent: list[Any] = []
    for call in calls:
        try:
            sent.append(celery_app.send_task(name, **call))
        except Exception as exc:
            broker = mask_url(str(celery_app.conf.broker_url))
            done = f" ({len(sent)} queued before it: {', '.join(r.id for r in sent)})" if sent else ""
            if _out_of_memory(exc):
                raise PublishError(
                    f"{name} was not queued: the broker's Redis at {broker} is out of memory (maxmemory "
                    f"reached and nothing left to evict){done}. Start workers to drain the queues, "
                    "or raise maxmemory.") from None
            cause = _root_cause(exc)
            raise PublishError(f"{name} was not queued on the broker at {broker}: "
                               f"{type(cause).__name__}: {mask_text(str(cause).strip())}{done}") from None
    return sent

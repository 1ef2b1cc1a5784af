"""Queue tasks from the shell: a broker that refuses a message is one clear error, never a silent loss."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cachewarm.errors import TransportError


class PublishError(TransportError):
    """The broker refused or could not take a task message."""


def _out_of_memory(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "OutOfMemoryError" or "maxmemory" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def send_all(celery_app: Any, name: str, calls: Iterable[dict[str, Any]]) -> list[Any]:
    """``send_task(name, **call)`` for each call; on failure raise :class:`PublishError` saying what was queued.

    kombu reports a full Redis (``OOM command not allowed``) as an OperationalError
    naming an internal command, and a retried publish can even surface as an
    AttributeError; the user gets one line that names the cause and the way out.
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
            raise PublishError(f"{name} was not queued on the broker at {broker}: "
                               f"{type(exc).__name__}: {mask_text(str(exc))}{done}") from None
    return sent

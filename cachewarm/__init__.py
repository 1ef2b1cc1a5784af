"""cachewarm: a read cache for a DynamoDB single table, kept warm by Celery workers.

The domain core (settings, repository, cache engine) is plain Python with no
Celery import; ``workers``, ``loaders`` and the CLI build on it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "fetch_restaurant_summary", "reset"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package (and the CLI) stays fast and connects nothing.
    if name in ("fetch_restaurant_summary", "reset"):
        from cachewarm import service

        return getattr(service, name)
    raise AttributeError(name)

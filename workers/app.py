"""Declare the Celery app; its configuration is computed lazily from settings.

Declaring connects nothing: Celery opens broker connections only when a worker
starts or a task is sent.
"""

from __future__ import annotations

import sys

from celery import Celery

from cachewarm.errors import ConfigError
from cachewarm.settings import Settings, get_settings
from workers.config import celery_config

#: Task modules, imported by every worker. Task names are explicit strings, so
#: moving a module never breaks beat entries, Flower or callers.
TASK_MODULES = [
    "workers.tasks.warm",
    "workers.tasks.maintenance",
    "workers.tasks.bench",
    "workers.tasks.load",
]


def _config_from_environment() -> dict:
    try:
        return celery_config(get_settings())
    except ConfigError as exc:
        # Celery's own CLI would print a traceback; one line and exit 2 instead.
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app with the project's configuration; from the environment (lazily) by default.

    Tests and tools that talk to several brokers in one process build one app per settings.
    """
    celery = Celery("cachewarm", include=TASK_MODULES, set_as_current=settings is None)
    if settings is None:
        celery.add_defaults(_config_from_environment)  # evaluated on first use, not now
    else:
        celery.conf.update(celery_config(settings))
    return celery


app = create_app()

import workers.kombu_fixes  # noqa: E402 - patches kombu when a worker starts (worker_init), not here
import workers.signals  # noqa: E402,F401 - connects start-up checks (connects to nothing)
from workers import tracking  # noqa: E402,F401 - records task runs for `cachewarm stats` (connects to nothing)

"""Declare the Celery app; configuration is read lazily from :mod:`workers.config`.

Declaring connects nothing: Celery opens broker connections only when a worker
starts or a task is sent.
"""

from __future__ import annotations

from celery import Celery

#: Task modules, imported by every worker. Task names are explicit strings, so
#: moving a module never breaks beat entries, Flower or callers.
TASK_MODULES = [
    "workers.tasks.warm",
    "workers.tasks.maintenance",
    "workers.tasks.bench",
]

app = Celery("cachewarm", include=TASK_MODULES)
# A string is resolved on first access to app.conf, not now.
app.config_from_object("workers.config")

import workers.signals  # noqa: E402,F401 - connects start-up checks (connects to nothing)

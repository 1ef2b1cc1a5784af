"""Declare the Celery app; its configuration is computed lazily from settings.

Declaring connects nothing: Celery opens broker connections only when a worker
starts or a task is sent.
"""

from __future__ import annotations

import sys
from pathlib import Path

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


def _flower_reads_our_config() -> None:
    """Make ``celery -A workers flower`` read workers/flowerconfig.py from wherever this package is installed.

    Flower (2.x) executes the file named by its ``conf`` option, default ``flowerconfig.py`` in the working
    directory: the image (a wheel, started in an empty /app) has no such file. A ``celery`` process defines
    Flower's options before it imports the app (celery loads its command plugins first), and ``-A workers``
    imports this module before Flower's command runs; so here, and only when Flower is loaded, the default
    becomes the installed file. Flower applies ``FLOWER_CONF`` and ``--conf`` after this, so both still win.
    Nothing else reads the option: in a worker or beat process this changes nothing.
    """
    flower_options = sys.modules.get("flower.options")
    default = getattr(flower_options, "DEFAULT_CONFIG_FILE", None)
    if default is None:
        return
    from tornado.options import options

    if "conf" in options and options.conf == default:
        options.conf = str(Path(__file__).with_name("flowerconfig.py"))


app = create_app()
_flower_reads_our_config()

import workers.kombu_fixes  # noqa: E402 - patches kombu when a worker starts (worker_init), not here
import workers.liveness  # noqa: E402 - the worker's and beat's liveness files, for `python -m workers.health`
import workers.signals  # noqa: E402 - connects start-up checks (connects to nothing)
from workers import tracking  # noqa: E402,F401 - records task runs for `cachewarm stats` (connects to nothing)

workers.liveness.install(app)

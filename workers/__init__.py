"""The Celery app, importable as ``workers`` (``celery -A workers worker|beat|flower``)."""

from workers.app import app

celery = app
__all__ = ["app", "celery"]

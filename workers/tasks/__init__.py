"""Thin Celery tasks over the plain-Python core. Task names are listed in README.md."""

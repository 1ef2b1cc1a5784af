"""Beat entries built from settings, so every schedule changes without code changes."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from cachewarm.settings import Settings, parse_schedule


def to_celery_schedule(value: str):
    """Seconds -> float, crontab fields -> celery crontab, "off" -> None."""
    parsed = parse_schedule(value)
    if parsed is None or isinstance(parsed, float):
        return parsed
    minute, hour, day_of_month, month_of_year, day_of_week = parsed
    return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                   day_of_week=day_of_week)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The beat schedule: warm hot summaries, invalidate stale keys, run the benchmark, optionally reload."""
    entries = {
        "warm-hot": ("cachewarm.warm_hot", settings.warm_hot_schedule, {"top": settings.warm_hot_top_k}),
        "invalidate-stale": ("cachewarm.invalidate_stale", settings.invalidate_stale_schedule, {}),
        "benchmark": ("cachewarm.run_benchmark", settings.benchmark_schedule, {"sample": settings.benchmark_sample}),
    }
    if settings.load_schedule_file:
        entries["reload"] = ("cachewarm.bulk_load", settings.load_schedule, {"path": settings.load_schedule_file})
    schedule: dict[str, dict[str, Any]] = {}
    for name, (task, value, kwargs) in entries.items():
        when = to_celery_schedule(value)
        if when is None:
            continue
        # A periodic run that could not start before the next one is due is pointless.
        expires = when * 0.9 if isinstance(when, float) else None
        schedule[name] = {"task": task, "schedule": when, "kwargs": kwargs,
                          "options": {"expires": expires} if expires else {}}
    return schedule

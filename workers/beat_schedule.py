"""The beat schedule as ``cachewarm stats`` shows it: last and next run of every entry.

Read from celery-redbeat's keys: the sorted set ``<redbeat_key_prefix>:schedule``
(score = next run, epoch seconds) and each entry's hash, decoded with redbeat's
own JSON decoder. Before beat has ever run, the next run is computed from the
configured schedule (:func:`workers.schedule.beat_schedule`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from redbeat.decoder import RedBeatJSONDecoder

from cachewarm.stats import iso, text


def _run_every(schedule: Any) -> timedelta | None:
    if isinstance(schedule, int | float) and not isinstance(schedule, bool):
        return timedelta(seconds=schedule)  # beat_schedule entries give intervals as seconds
    run_every = getattr(schedule, "run_every", None)
    return run_every if isinstance(run_every, timedelta) else None


def describe_schedule(schedule: Any) -> str:
    """``every 180s`` or ``crontab 0 4 * * * (UTC)`` for seconds and celery/redbeat schedule objects."""
    run_every = _run_every(schedule)
    if run_every is not None:
        return f"every {run_every.total_seconds():g}s"
    parts = [getattr(schedule, f"_orig_{f}", None)
             for f in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")]
    if all(p is not None for p in parts):
        return "crontab " + " ".join(str(p) for p in parts) + " (UTC)"
    return str(schedule)


def _next_from_config(schedule: Any, now: float) -> tuple[float | None, str | None]:
    """Next run of a configured entry that beat has never stored."""
    run_every = _run_every(schedule)
    if run_every is not None:
        # redbeat stores a new entry as if it had just run: its first run is one interval after beat starts.
        every = f"{run_every.total_seconds():g}s"
        return None, f"{every} after beat starts, then every {every}"
    if getattr(schedule, "remaining_estimate", None) is None:
        return None, None
    delta = _as_of(schedule, now).remaining_estimate(datetime.fromtimestamp(now, UTC))
    return (round(now + delta.total_seconds()), None) if delta is not None else (None, "never")


def _as_of(schedule: Any, now: float) -> Any:
    """A copy of a celery schedule whose clock reads ``now`` (its estimates are relative to it)."""
    clocked = copy.copy(schedule)
    clocked.nowfun = lambda: datetime.fromtimestamp(now, UTC)
    return clocked


def _estimate(schedule: Any, last_run_at: datetime | None, now: float) -> float | None:
    """Next run after ``last_run_at``, to the second, from a schedule object."""
    if getattr(schedule, "remaining_estimate", None) is None or last_run_at is None:
        return None
    delta = _as_of(schedule, now).remaining_estimate(last_run_at)  # from now to the next run after last_run_at
    return None if delta is None else round(now + delta.total_seconds())


def beat_schedule(
    client: Any, redbeat_prefix: str, configured: Mapping[str, Mapping[str, Any]], now: float,
) -> list[dict[str, Any]]:
    """Beat entries with their last and next run.

    Read from redbeat's keys when beat has stored them (``source: redbeat``);
    configured entries beat has not stored yet are computed (``source: config``).
    ``configured`` is ``workers.schedule.beat_schedule(settings)``.
    """
    scores = {text(member): score for member, score in
              client.zrange(f"{redbeat_prefix}:schedule", 0, -1, withscores=True)}
    entries: dict[str, dict[str, Any]] = {}
    keys = sorted(k for k in scores if k.startswith(redbeat_prefix))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, "definition", "meta")
    for key, (definition, meta) in zip(keys, pipe.execute(), strict=True):
        if not definition:
            continue
        d = json.loads(definition, cls=RedBeatJSONDecoder)
        m = json.loads(meta, cls=RedBeatJSONDecoder) if meta else {}
        score = scores[key]
        next_ts = score if score >= 0 else None
        estimate = _estimate(d.get("schedule"), m.get("last_run_at"), now)
        if next_ts is not None and estimate is not None and abs(estimate - next_ts) < 2:
            next_ts = estimate  # the same run: redbeat truncates its score to whole seconds
        name = d.get("name") or key[len(redbeat_prefix):]
        entries[name] = {
            "name": name,
            "task": d.get("task"),
            "schedule": describe_schedule(d.get("schedule")),
            "enabled": bool(d.get("enabled", True)),
            # Beat stores a new entry with last_run_at = its own start; only a count says it ran.
            "last_run_at": iso(m.get("last_run_at")) if m.get("total_run_count") else None,
            "total_run_count": m.get("total_run_count") or 0,
            "next_run_at": iso(next_ts),
            "overdue": next_ts is not None and next_ts < now - 60,
            "note": None,
            "source": "redbeat",
        }
    for name, conf in configured.items():
        if name in entries:
            continue
        next_ts, note = _next_from_config(conf["schedule"], now)
        entries[name] = {
            "name": name,
            "task": conf["task"],
            "schedule": describe_schedule(conf["schedule"]),
            "enabled": True,
            "last_run_at": None,
            "total_run_count": None,
            "next_run_at": iso(next_ts),
            "overdue": False,
            "note": note,
            "source": "config",
        }
    return sorted(entries.values(), key=lambda e: e["name"])

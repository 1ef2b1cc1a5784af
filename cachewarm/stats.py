"""The operator's view of the cache: hit ratio, consistency, keys and memory, hot keys, task runs, beat schedule.

Plain Python over redis-py clients, no Celery (the beat schedule is read by
``workers/beat_schedule.py`` and handed in as a callable). Everything here
only reads, except :meth:`TaskRuns.record`, which the workers call after each
task (``workers/tracking.py``), and :meth:`HotKeys.top`, which unions the hot
buckets into a temporary key it deletes in the same transaction.

Where the numbers come from:

* cache counters: :class:`cachewarm.metrics.Metrics`, per-minute hashes under
  ``<prefix>:v2:stats:m:<minute>`` (kept 25 hours);
* consistency: the audit's ``audit_checked``/``audit_stale`` and the change
  feed's ``feed_*`` counters in the same hashes, and the feed's write-to-invalidation
  lag samples, newest first, in the list ``<prefix>:v2:stats:feed:lag``
  (milliseconds as decimal text; the feed trims it and gives it a TTL);
* key count: ``SCAN MATCH <prefix>:v2:{*}:sum COUNT 1000`` (every primary of a cluster) (never ``KEYS``);
* memory and evictions: ``INFO memory`` and ``INFO stats`` (server-wide, so
  evictions include any other tenant of the instance). ElastiCache and ACLs may
  refuse ``INFO`` or ``CONFIG``: the fields are then ``None``, never an error;
* task runs: one hash per task name under ``<prefix>:v2:stats:task:<name>``,
  with a TTL (:data:`TASK_RUN_TTL`), plus an index set of the names;
* beat schedule: celery-redbeat's sorted set ``<redbeat_key_prefix>:schedule``
  (score = next run, epoch seconds) and each entry's hash; before beat has ever
  run, the next run is computed from the configured schedule.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cachewarm.eviction import eviction_warning, read_policy
from cachewarm.hotkeys import HotKeys
from cachewarm.keys import KeySchema
from cachewarm.masking import mask_text
from cachewarm.metrics import Metrics
from cachewarm.percentiles import percentile
from cachewarm.shards import dbsize

if TYPE_CHECKING:
    import redis
    from redis.typing import EncodableT, FieldT

#: Hit-ratio windows, label -> seconds. 24h fits the counters' 25-hour retention.
WINDOWS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600, "24h": 86400}
#: A task's last run is kept this long after it: longer than the longest schedule
#: (the daily benchmark) with room for a missed day, short enough to let retired
#: task names disappear.
TASK_RUN_TTL = 8 * 24 * 3600
SCAN_COUNT = 1000
#: Counter fields, in the order people read them.
COUNTERS = ("reads", "misses", "fills", "fill_us", "waits", "fill_slot_waits", "wait_timeouts", "refused_lease",
            "refused_floor", "refused_hold", "invalidations", "early_refreshes", "l1_hits", "l1_invalidations")
#: The change feed's counters, per window: stream records read, ignored (not a
#: restaurant's or review's change, or a write we invalidated ourselves) and
#: turned into invalidations.
FEED_COUNTERS = ("feed_records", "feed_ignored", "feed_invalidated")
#: Lag samples read from the feed's list: as many as the feed keeps.
FEED_LAG_SAMPLES = 1000
_MAX_RESULT_FIELDS = 20
_MAX_TEXT = 300


def iso(ts: float | datetime | None) -> str | None:
    """Epoch seconds or a datetime as ISO 8601 UTC, seconds precision."""
    if ts is None:
        return None
    if isinstance(ts, datetime):
        dt = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        return dt.astimezone(UTC).isoformat(timespec="seconds")
    return datetime.fromtimestamp(float(ts), UTC).isoformat(timespec="seconds")


def text(value: Any) -> str:
    """A Redis reply (bytes or str) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


# -- hit ratio -------------------------------------------------------------------
def window_summary(counters: Mapping[str, int]) -> dict[str, Any]:
    """Derived figures for one window's counter totals.

    Every read is counted (``reads``, sampled at HOT_SAMPLE_RATE). A read is a
    hit unless it had to read DynamoDB: it took the fill lease (``misses``),
    gave up waiting for another filler (``wait_timeouts``), or refreshed ahead
    of expiry (``early_refreshes``). Waits that got the other filler's value are
    hits. Warming fills count in ``fills`` but are not reads.
    """
    c = {name: int(counters.get(name, 0)) for name in COUNTERS}
    db_reads = c["misses"] + c["wait_timeouts"] + c["early_refreshes"]
    hits = max(0, c["reads"] - db_reads)
    fill_attempts = c["misses"] + c["early_refreshes"]
    out: dict[str, Any] = {
        "hit_ratio": round(min(1.0, hits / c["reads"]), 4) if c["reads"] else None,
        "hits": hits,
        **{k: v for k, v in c.items() if k != "fill_us"},
        "fill_ms_avg": round(c["fill_us"] / fill_attempts / 1000.0, 3) if fill_attempts else None,
    }
    return out


def window_totals(metrics: Metrics, now: float, windows: Mapping[str, int] = WINDOWS) -> dict[str, dict[str, int]]:
    """Every counter's total over each window, by label (read once, for the hit ratio and consistency)."""
    return {label: metrics.window(seconds, now) for label, seconds in windows.items()}


def hit_ratios(metrics: Metrics, now: float, windows: Mapping[str, int] = WINDOWS) -> dict[str, dict[str, Any]]:
    """:func:`window_summary` for each window, by label."""
    return {label: window_summary(totals) for label, totals in window_totals(metrics, now, windows).items()}


# -- consistency -------------------------------------------------------------------
def consistency_summary(counters: Mapping[str, int]) -> dict[str, Any]:
    """One window of the consistency audit and the change feed.

    ``checked`` cached summaries were compared with DynamoDB by the audit
    (``cachewarm.invalidate_stale``) and ``stale`` of them differed;
    ``stale_fraction`` estimates the share of cached summaries that are stale
    at any moment (None when the audit checked nothing).
    """
    checked, stale = int(counters.get("audit_checked", 0)), int(counters.get("audit_stale", 0))
    return {
        "checked": checked,
        "stale": stale,
        "stale_fraction": round(stale / checked, 6) if checked else None,
        **{name: int(counters.get(name, 0)) for name in FEED_COUNTERS},
    }


def feed_lag(client: redis.Redis, keys: KeySchema, samples: int = FEED_LAG_SAMPLES) -> dict[str, Any]:
    """The change feed's write-to-invalidation lag over its latest samples: count, p50 and p99 in ms.

    Samples that are not finite numbers are skipped (the list is written by
    another process; a bad entry must not hide the others).
    """
    values: list[float] = []
    for raw in client.lrange(keys.stats("feed:lag"), 0, samples - 1):
        try:
            value = float(text(raw))
        except ValueError:
            continue
        if math.isfinite(value):
            values.append(value)
    if not values:
        return {"count": 0, "p50_ms": None, "p99_ms": None}
    return {"count": len(values), "p50_ms": round(percentile(values, 0.5), 3),
            "p99_ms": round(percentile(values, 0.99), 3)}


# -- keys, memory, evictions --------------------------------------------------------
def count_keys(client: redis.Redis, pattern: str, count: int = SCAN_COUNT) -> int:
    """How many keys match ``pattern``, by SCAN (O(keyspace) but never blocking)."""
    return sum(1 for _ in client.scan_iter(match=pattern, count=count))


def _info(client: redis.Redis, section: str) -> dict[str, Any] | None:
    """``INFO section``; on a cluster the primaries' counters summed (the first primary's for the rest)."""
    from redis.exceptions import ResponseError

    from cachewarm.shards import info_per_primary

    try:
        answers = info_per_primary(client, section)
    except ResponseError:  # NOPERM, or INFO renamed/disabled
        return None
    merged = dict(answers[0])
    for field in ("used_memory", "maxmemory", "evicted_keys", "expired_keys"):
        values = [answer.get(field) for answer in answers]
        if all(isinstance(value, int) for value in values):
            merged[field] = sum(values)
    if len(answers) > 1:
        merged["used_memory_human"] = f"{merged.get('used_memory', 0) / 1048576:.2f}M"
        merged["shards"] = len(answers)
    return merged


def memory(client: redis.Redis) -> dict[str, Any]:
    """Memory, limit, eviction policy and evictions (summed over a cluster's primaries); ``None`` where refused."""
    mem = _info(client, "memory") or {}
    stats = _info(client, "stats") or {}
    policy = mem.get("maxmemory_policy")
    if policy is None:
        policy = read_policy(client)  # CONFIG GET; None when CONFIG is disabled (ElastiCache)
    policy = text(policy) if policy is not None else None
    return {
        "used_memory": mem.get("used_memory"),
        "used_memory_human": mem.get("used_memory_human"),
        "maxmemory": mem.get("maxmemory"),
        "maxmemory_human": mem.get("maxmemory_human"),
        "maxmemory_policy": policy,
        "evicted_keys": stats.get("evicted_keys"),
        "expired_keys": stats.get("expired_keys"),
        "eviction_warning": eviction_warning(policy),
        "shards": mem.get("shards", 1),
    }


# -- task runs -------------------------------------------------------------------------
def summarize_result(value: Any, depth: int = 2) -> Any:
    """A small, secret-free picture of a task's return value.

    Lists become their length (a warm's names are not worth keeping); mappings
    keep their first fields, two levels deep (a benchmark's ``db_ms.p50``).
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return mask_text(value)[:_MAX_TEXT]
    if isinstance(value, list | tuple | set):
        return len(value)
    if isinstance(value, Mapping):
        if depth <= 0:
            return len(value)
        return {str(key): summarize_result(item, depth - 1)
                for key, item in list(value.items())[:_MAX_RESULT_FIELDS]}
    return mask_text(repr(value))[:_MAX_TEXT]


def describe_error(exc: BaseException) -> str:
    """``Type: message`` with credentials masked, on one line."""
    line = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return mask_text(line)[:_MAX_TEXT]


class TaskRuns:
    """Each task's last run, kept in Redis for ``cachewarm stats``."""

    def __init__(self, redis_client: redis.Redis, keys: KeySchema, ttl: int = TASK_RUN_TTL):
        self.redis = redis_client
        self.keys = keys
        self.ttl = ttl

    def key(self, task: str) -> str:
        """The hash holding ``task``'s last run."""
        return self.keys.stats(f"task:{task}")

    @property
    def index_key(self) -> str:
        """The set of task names that have a last run."""
        return self.keys.stats("tasks")

    def record(
        self, task: str, *, task_id: str, state: str, runtime: float | None, result: Any = None,
        error: BaseException | str | None = None, worker: str | None = None, now: float | None = None,
        attempts: int | None = None,
    ) -> None:
        """Store one finished run (one round trip); both keys get the TTL again.

        ``attempts`` is the run's attempt (1 + Celery's retries: transport retries
        and re-sends after a lost pool process); None when unknown.
        """
        now = time.time() if now is None else now
        fields: dict[FieldT, EncodableT] = {
            "task": task,
            "task_id": task_id,
            "state": state,
            "finished_at": f"{now:.3f}",
            "runtime_s": "" if runtime is None else f"{runtime:.4f}",
            "result": json.dumps(summarize_result(result), default=str) if error is None else "",
            "error": "" if error is None else (error if isinstance(error, str) else describe_error(error)),
            "worker": worker or "",
            "attempts": "" if attempts is None else str(int(attempts)),
        }
        key = self.key(task)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, mapping=fields)
        pipe.hincrby(key, f"count:{state}", 1)
        pipe.expire(key, self.ttl)
        pipe.sadd(self.index_key, task)
        pipe.expire(self.index_key, self.ttl)
        pipe.execute()

    def last_runs(self, also: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Every recorded task's last run, plus ``also`` (never run: ``state`` None), by name."""
        names = {text(n) for n in self.redis.smembers(self.index_key)} | set(also)
        ordered = sorted(names)
        pipe = self.redis.pipeline(transaction=False)
        for name in ordered:
            pipe.hgetall(self.key(name))
        runs = []
        for name, raw in zip(ordered, pipe.execute(), strict=True):
            runs.append(self._decode(name, {text(k): text(v) for k, v in raw.items()}))
        return runs

    @staticmethod
    def _decode(name: str, h: dict[str, str]) -> dict[str, Any]:
        if not h:
            return {"task": name, "state": None, "last_run": None}
        counts = {k.split(":", 1)[1]: int(v) for k, v in h.items() if k.startswith("count:")}
        result: Any = None
        if h.get("result"):
            try:
                result = json.loads(h["result"])
            except ValueError:
                result = h["result"]
        return {
            "task": name,
            "state": h.get("state"),
            "last_run": iso(float(h["finished_at"])) if h.get("finished_at") else None,
            "runtime_s": float(h["runtime_s"]) if h.get("runtime_s") else None,
            "task_id": h.get("task_id"),
            "worker": h.get("worker") or None,
            "result": result,
            "error": h.get("error") or None,
            "attempts": int(h["attempts"]) if h.get("attempts") else None,
            "runs": sum(counts.values()),
            "failures": counts.get("FAILURE", 0),
        }


# -- everything ----------------------------------------------------------------------
def collect(
    cache: redis.Redis,
    keys: KeySchema,
    *,
    schedule: Callable[[float], list[dict[str, Any]]] | None = None,
    scheduled_tasks: Iterable[str] = (),
    task_names: Iterable[str] = (),
    top: int = 10,
    now: float | None = None,
    hot_factory: Callable[[redis.Redis, KeySchema], HotKeys] = HotKeys,
) -> dict[str, Any]:
    """The whole report, JSON-ready. A section that fails is named in ``errors``, not raised.

    ``schedule(now)`` reads the beat schedule (``workers.beat_schedule``: it needs
    redbeat's decoder, which the core does not import); ``scheduled_tasks`` are
    the task names beat runs, listed among the task runs even before they ran.
    """
    from redis.exceptions import RedisError

    now = time.time() if now is None else now
    report: dict[str, Any] = {"generated_at": iso(now), "key_prefix": keys.root}
    errors: dict[str, str] = {}

    def section(name: str, build: Callable[[], Any], default: Any = None) -> Any:
        try:
            return build()
        except (RedisError, OSError, ValueError) as exc:
            errors[name] = describe_error(exc)
            return default

    totals = section("windows", lambda: window_totals(Metrics(cache, keys), now), {})
    windows = {label: window_summary(counters) for label, counters in totals.items()}
    report["hit_ratio"] = {label: w["hit_ratio"] for label, w in windows.items()}
    report["windows"] = windows
    report["consistency"] = {
        "windows": {label: consistency_summary(counters) for label, counters in totals.items()},
        "feed_lag": section("feed_lag", lambda: feed_lag(cache, keys), None),
    }
    report["keys"] = section("keys", lambda: {
        "summaries": count_keys(cache, keys.summary_pattern()),
        "db_keys": dbsize(cache),
    })
    report["memory"] = section("memory", lambda: memory(cache))
    report["hot_keys"] = section(
        "hot_keys",
        lambda: [{"name": n, "score": round(s, 2)} for n, s in hot_factory(cache, keys).top(top, now)], [])
    report["tasks"] = section("tasks", lambda: TaskRuns(cache, keys).last_runs([*task_names, *scheduled_tasks]), [])
    if schedule is not None:
        report["schedule"] = section("schedule", lambda: schedule(now), [])
    report["errors"] = errors
    return report

"""What the engine needs to know about the cache's topology: one node, or a Redis Cluster.

* :class:`Breaker`: fail-open per shard. A shard that fails a command is skipped
  for ``CACHE_BACKOFF_SECONDS`` (its names are read from DynamoDB) while the
  other shards keep serving; on one node there is one shard.
* :func:`eval_pipelined`: many calls of one Lua script in one pipeline, which
  redis-py's cluster pipeline splits per node: one round trip per shard.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline
    from redis.commands.core import Script

log = logging.getLogger("cachewarm.cache")


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is redis-py's ``RedisCluster`` (``CACHE_REDIS_MODE=cluster``)."""
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


class Breaker:
    """Skips the shards that failed recently; ``shard(key)`` names a key's shard (None on one node)."""

    def __init__(self, client: redis.Redis, backoff_seconds: float):
        self.client = client
        self.backoff_seconds = backoff_seconds
        self.cluster = is_cluster(client)
        self._skip_until: dict[str | None, float] = {}
        self._lock = threading.Lock()

    def shard(self, key: str) -> str | None:
        """The name (``host:port``) of the primary serving ``key``; None on one node."""
        if not self.cluster:
            return None
        try:
            return str(self.client.get_node_from_key(key).name)  # type: ignore[attr-defined]
        except Exception:  # no slot map yet (every node unreachable): one breaker for all
            return ""

    def open(self, shard: str | None) -> bool:
        """True while ``shard`` is being skipped."""
        until = self._skip_until.get(shard)
        return until is not None and time.monotonic() < until

    def trip(self, shard: str | None, exc: BaseException) -> None:
        """Skip ``shard`` for the backoff."""
        with self._lock:
            self._skip_until[shard] = time.monotonic() + self.backoff_seconds
        where = f"shard {shard}" if shard else "cache"
        log.warning("%s unavailable, reading DynamoDB directly for %.1fs: %s", where, self.backoff_seconds, exc)


def eval_pipelined(
    client: redis.Redis, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
    also: Callable[[Pipeline], None] | None = None,
) -> list[Any]:
    """Run ``script`` once per ``(keys, args)``, pipelined: one round trip per shard; results in order.

    EVALSHA directly: a Script object in a pipeline costs an extra SCRIPT EXISTS
    round trip. A server that does not know the script yet (first use, a SCRIPT
    FLUSH, a new shard) answers NOSCRIPT: it is loaded there and the calls sent
    again (every script is idempotent: the second call finds the first one's
    work done). ``also(pipe)`` queues the caller's own commands, once. Errors raise.
    """
    if is_cluster(client):
        return _eval_per_node(client, script, calls, also)
    results = _eval_on(client, script, list(calls), also)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results[: len(calls)]


def _eval_on(node: redis.Redis, script: Script, calls: list[tuple[Sequence[str], Sequence[Any]]],
             also: Callable[[Pipeline], None] | None = None) -> list[Any]:
    from redis.exceptions import NoScriptError

    results: list[Any] = []
    for attempt in range(2):
        pipe = node.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        if attempt == 0 and also is not None:  # queued once, even if the calls must be sent again
            also(pipe)
        results = pipe.execute(raise_on_error=False)
        if not any(isinstance(r, NoScriptError) for r in results[: len(calls)]):
            break
        node.script_load(script.script)
    return results


def _eval_per_node(client: Any, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
                   also: Callable[[Pipeline], None] | None) -> list[Any]:
    """The cluster case: redis-py refuses EVALSHA in a cluster pipeline, so one plain pipeline per primary."""
    from redis.exceptions import MovedError

    by_node: dict[str, list[int]] = defaultdict(list)
    for index, (keys, _) in enumerate(calls):
        by_node[client.get_node_from_key(keys[0]).name].append(index)
    results: list[Any] = [None] * len(calls)
    for name, indexes in by_node.items():
        node = client.get_redis_connection(client.get_node(node_name=name))
        for index, result in zip(indexes, _eval_on(node, script, [calls[i] for i in indexes]), strict=True):
            if isinstance(result, MovedError):  # resharded since the slot map was read: let the cluster route it
                keys, args = calls[index]
                result = script(keys=list(keys), args=list(args), client=client)
            results[index] = result
    if also is not None:
        pipe = client.pipeline(transaction=False)
        also(pipe)
        pipe.execute()
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def scan_step(client: Any, position: str, *, match: str, count: int) -> tuple[str, list[Any]]:
    """One SCAN call of a scan that covers every primary; ``"0"`` starts it and means it is done.

    On one node ``position`` is the SCAN cursor. On a cluster it is
    ``"<primary index>:<cursor>"`` over the primaries sorted by name: each is
    scanned to its end in turn (a position that no longer fits the cluster
    starts again at the first primary: at worst part of a cycle is repeated).
    """
    if not is_cluster(client):
        cursor, keys = client.scan(int(position), match=match, count=count)
        return str(cursor), keys
    primaries = sorted(client.get_primaries(), key=lambda node: node.name)
    index_text, _, cursor_text = position.partition(":")
    index, cursor = (int(index_text), int(cursor_text or 0)) if cursor_text else (0, 0)
    if index >= len(primaries):
        index, cursor = 0, 0
    cursors, keys = client.scan(cursor, match=match, count=count, target_nodes=primaries[index])
    following = int(next(iter(cursors.values())))
    if following:
        return f"{index}:{following}", keys
    return (f"{index + 1}:0" if index + 1 < len(primaries) else "0"), keys


def dbsize(client: Any) -> int:
    """Keys in the database, summed over every primary of a cluster."""
    if not is_cluster(client):
        return int(client.dbsize())
    from redis.cluster import RedisCluster

    return int(client.dbsize(target_nodes=RedisCluster.PRIMARIES))


def info_per_primary(client: Any, section: str) -> list[dict[str, Any]]:
    """``INFO section`` of the node, or of every primary of a cluster."""
    if not is_cluster(client):
        return [client.info(section)]
    from redis.cluster import RedisCluster

    answer = client.info(section, target_nodes=RedisCluster.PRIMARIES)
    if answer and all(isinstance(value, dict) for value in answer.values()):
        return list(answer.values())  # by node name
    return [answer]

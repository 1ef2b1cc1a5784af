"""What the cache stores and what a read returns: the cached entry, the read's result, XFetch's test.

Kept apart from the engine (:mod:`cachewarm.cache`, which re-exports these
names) so that the engine module holds only the read path's logic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachewarm.model import Summary


class _NoValue:
    """Sentinel for "nothing cached", distinct from a cached "not found" (dogpile's NO_VALUE)."""

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Any = _NoValue()

# Cache statuses reported with every result.
HIT, MISS, WAITED, UNAVAILABLE, REFRESHED = "hit", "miss", "waited", "unavailable", "refreshed"


@dataclass(slots=True)
class CacheEntry:
    """A decoded cached value: a summary, or a cached "not found" (summary None)."""

    summary: Summary | None
    version: int
    delta: float  # seconds the fill took (XFetch's recompute cost)
    expires_at: float  # epoch seconds

    def encode(self) -> str:
        """Serialize for Redis."""
        body: dict[str, Any] = {"ver": self.version, "d": round(self.delta, 6), "e": round(self.expires_at, 3)}
        if self.summary is not None:
            body["s"] = self.summary.to_dict()
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def decode(cls, raw: bytes | str) -> CacheEntry:
        """Parse a value written by :meth:`encode`."""
        body = json.loads(raw)
        data = body.get("s")
        return cls(
            Summary(data["restaurant"], data["reviews"]) if data is not None else None,
            body.get("ver", 0),
            body.get("d", 0.0),
            body.get("e", 0.0),
        )


@dataclass(slots=True)
class FetchResult:
    """What a read returned, where it came from and how long it took."""

    name: str
    summary: Summary | None
    source: str  # "cache" or "db"
    latency_ms: float
    cache: str  # hit | miss | waited | refreshed | unavailable
    setup_ms: float = 0.0  # one-time client construction this read triggered, not counted in latency_ms

    @property
    def found(self) -> bool:
        """False when the restaurant does not exist."""
        return self.summary is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by ``cachewarm get --json``."""
        out: dict[str, Any] = {"name": self.name, "found": self.found}
        if self.summary is not None:
            out.update(self.summary.to_dict())
        out.update(source=self.source, latency_ms=round(self.latency_ms, 3), cache=self.cache)
        if self.setup_ms:
            out["setup_ms"] = round(self.setup_ms, 3)
        return out


def xfetch_due(entry: CacheEntry, *, now: float, beta: float, rand: Callable[[], float]) -> bool:
    """XFetch: recompute early with probability rising as expiry nears.

    Due when ``now - delta * beta * ln(rand) >= expiry``; ``delta`` is what the
    last fill cost, so expensive values start refreshing earlier.
    """
    if entry.delta <= 0 or beta <= 0:
        return False
    return now - entry.delta * beta * math.log(max(rand(), 1e-12)) >= entry.expires_at

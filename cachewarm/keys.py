"""The cache's key schema: namespaced, versioned, and safe for any name.

A name is percent-encoded (UTF-8, everything but ``A-Za-z0-9_.-~`` escaped), so
the key holds no glob characters (``* ? [ ] \\``), no whitespace or control
characters, and no ``:`` that could be confused with our separators. The encoding
is reversible and injective: two names never share a key, and a name that is a
prefix of another gets a key that is a prefix only inside its own kind, which no
code relies on because we never match per-name patterns.

Layout (``cw`` is the configurable prefix, ``v2`` the schema version)::

    cw:v2:{<name>}:sum    the cached summary (JSON), always with a TTL
    cw:v2:{<name>}:lease  the fill lease token, with a millisecond TTL
    cw:v2:{<name>}:floor  minimum restaurant version a fill may store (set on write)
    cw:v2:{<name>}:hold   present while fills may not be stored (after a change-feed invalidation)
    cw:v2:fills           sorted set of the fills in flight (lease tokens by expiry): the fill cap
    cw:v2:{hot}:<bucket>  sorted set of read counts for one time bucket
    cw:v2:stats:*         counters

Slots: on a Redis Cluster (ElastiCache cluster mode, Serverless) a key's slot is
the hash of its first ``{...}``. Every key of one name carries the encoded name
as that hash tag, so the Lua scripts, which touch a name's summary, lease, floor
and hold-off together, always stay in one slot; names spread over the shards. The
hot-key buckets share the tag ``{hot}`` because ranking unions them (ZUNIONSTORE).
The encoding escapes ``{`` and ``}``, so a name can never end the tag early.

Bump ``SCHEMA_VERSION`` when the cached value's shape or the layout changes: old
keys are then simply never read again and expire by TTL (v1 keys, without hash
tags, lived at most the summary TTL plus jitter, 16.5 minutes with the defaults;
nothing has to run to remove them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import quote, unquote

from cachewarm.errors import InvalidNameError

SCHEMA_VERSION = "v2"
_SAFE = "-_.~"


def encode_name(name: str) -> str:
    """Encode a restaurant name into a key segment (reversible, glob-free)."""
    if not isinstance(name, str) or name == "":
        raise InvalidNameError("a restaurant name must be a non-empty string")
    return _quote(name)


@functools.lru_cache(maxsize=16384)
def _quote(name: str) -> str:
    # Cached: hot names are encoded on every hit, and quote() costs more than the rest of the hit path.
    return quote(name, safe=_SAFE, errors="surrogatepass")


def decode_name(segment: str) -> str:
    """Inverse of :func:`encode_name`."""
    return unquote(segment, errors="surrogatepass")


@dataclass(frozen=True)
class KeySchema:
    """Builds every key we own under ``<prefix>:<version>:``."""

    prefix: str = "cw"
    version: str = SCHEMA_VERSION

    @property
    def root(self) -> str:
        """The namespace every key starts with."""
        return f"{self.prefix}:{self.version}:"

    def summary(self, name: str) -> str:
        """Key of a restaurant's cached summary."""
        return f"{self.root}{{{encode_name(name)}}}:sum"

    def lease(self, name: str) -> str:
        """Key of the fill lease for a name (same slot as its summary)."""
        return f"{self.root}{{{encode_name(name)}}}:lease"

    def floor(self, name: str) -> str:
        """Key holding the lowest version a fill may store for a name (same slot as its summary)."""
        return f"{self.root}{{{encode_name(name)}}}:floor"

    def hold(self, name: str) -> str:
        """Key that, while it exists, stops fills of a name from being stored (the change feed's hold-off)."""
        return f"{self.root}{{{encode_name(name)}}}:hold"

    def name_keys(self, name: str) -> list[str]:
        """A name's summary, lease, floor and hold-off keys, in that order (one slot: the scripts' KEYS)."""
        tagged = f"{self.root}{{{encode_name(name)}}}:"
        return [f"{tagged}sum", f"{tagged}lease", f"{tagged}floor", f"{tagged}hold"]

    def fill_slots(self) -> str:
        """Sorted set of the fills in flight across all processes (CACHE_MAX_FILLS)."""
        return f"{self.root}fills"

    def hot_bucket(self, bucket: int) -> str:
        """Sorted set of read counts for one time bucket."""
        return f"{self.root}{{hot}}:{bucket}"

    def stats(self, name: str) -> str:
        """A counter or hash of counters."""
        return f"{self.root}stats:{name}"

    def summary_pattern(self) -> str:
        """SCAN MATCH pattern for every summary key (the prefix holds no glob chars; braces are literal)."""
        return f"{self.root}{{*}}:sum"

    def name_from_summary_key(self, key: str | bytes) -> str:
        """Recover the restaurant name from a summary key."""
        if isinstance(key, bytes):
            key = key.decode()
        head, tail = f"{self.root}{{", "}:sum"
        if not key.startswith(head) or not key.endswith(tail) or len(key) <= len(head) + len(tail):
            raise ValueError(f"not a summary key: {key!r}")
        return decode_name(key[len(head):-len(tail)])

"""The one chunker: cut a sequence into lists of at most ``size`` items.

Task payloads (names per ``warm_names`` task), DynamoDB batches (25 items per
``BatchWriteItem``) and Redis pipelines all cut their input the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> list[list[T]]:
    """Split ``items`` into lists of at most ``size``, in order (the last may be shorter)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    iterator = iter(items)
    out: list[list[T]] = []
    while chunk := list(islice(iterator, size)):
        out.append(chunk)
    return out

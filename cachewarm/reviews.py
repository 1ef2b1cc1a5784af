"""The write path: add a review, then invalidate the summary before returning (delete on write)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cachewarm.cache import CacheAside
from cachewarm.errors import PermanentError
from cachewarm.repository import RestaurantRepository


@dataclass(frozen=True)
class AddedReview:
    """A written review and the restaurant's new version."""

    review: dict[str, Any]
    version: int
    invalidated: bool


def now_iso() -> str:
    """Current UTC time in the data's ISO 8601 format (seconds, no zone)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def add_review(
    engine: CacheAside,
    repo: RestaurantRepository,
    restaurant: str,
    *,
    username: str,
    rating: int,
    text: str,
    clock: Callable[[], str] = now_iso,
) -> AddedReview:
    """Write the review and star counts in one transaction, then invalidate synchronously.

    The invalidation raises the key's version floor to the new version, so no
    reader can cache the pre-write summary afterwards, even one that read an
    eventually consistent index. If Redis is unreachable the error propagates
    after the write: the caller must say so (the change feed invalidates the
    summary again once Redis is back, and the TTL bounds it in any case).
    """
    if not username.strip():
        raise PermanentError("--user must not be empty")
    if not text.strip():
        raise PermanentError("--text must not be empty")
    created_at = clock()
    review_id = hashlib.sha1(f"{restaurant}\0{username}\0{created_at}".encode(), usedforsecurity=False).hexdigest()
    review, version = repo.add_review(
        restaurant, username=username, rating=rating, text=text, created_at=created_at, review_id=review_id,
    )
    invalidated = engine.invalidate(restaurant, min_version=version)
    return AddedReview(review=review, version=version, invalidated=invalidated)

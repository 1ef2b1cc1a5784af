"""The read model: a restaurant summary, and the items it is built from."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cachewarm import schema

#: How many reviews a summary carries.
RECENT_REVIEWS = 5

RESTAURANT_PREFIX = "REST#"
REVIEW_PREFIX = "#REVIEW#"
USER_PREFIX = "USER#"
#: The restaurant attribute counting each rating.
STAR_ATTRIBUTES = {5: "five_stars", 4: "four_stars", 3: "three_stars", 2: "two_stars", 1: "one_stars"}
#: Key attributes (cachewarm.schema's), which the summary drops: they are storage detail, not data.
KEY_ATTRIBUTES = schema.KEY_ATTRIBUTES


def restaurant_pk(name: str) -> str:
    """Partition key (and GSI1 partition key) of a restaurant."""
    return f"{RESTAURANT_PREFIX}{name}"


def review_key(review: dict[str, Any]) -> tuple[str, str]:
    """Sort key of a review for recency: ``created_at``, then ``id`` to break ties."""
    return (str(review.get("created_at", "")), str(review.get("id", "")))


def most_recent(reviews: Iterable[dict[str, Any]], n: int = RECENT_REVIEWS) -> list[dict[str, Any]]:
    """The ``n`` newest reviews by ``created_at``, newest first, in O(len) time and O(n) memory.

    ISO 8601 timestamps of one format compare correctly as strings, which is how
    the original data stores them.
    """
    return heapq.nlargest(n, reviews, key=review_key)


def plain(value: Any) -> Any:
    """Convert DynamoDB's Decimals (recursively) into ints or floats for JSON."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    return value


def strip_keys(item: dict[str, Any]) -> dict[str, Any]:
    """An item's attributes without its key attributes."""
    return {k: v for k, v in item.items() if k not in KEY_ATTRIBUTES}


@dataclass(frozen=True)
class Summary:
    """A restaurant plus its most recent reviews, newest first."""

    restaurant: dict[str, Any]
    reviews: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The restaurant's name."""
        return str(self.restaurant.get("name", ""))

    @property
    def version(self) -> int:
        """The restaurant item's version (0 for data loaded from the original format)."""
        try:
            return int(self.restaurant.get("version", 0))
        except (TypeError, ValueError):
            return 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, also the cached representation."""
        return {"restaurant": self.restaurant, "reviews": self.reviews}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Summary:
        """Inverse of :meth:`to_dict`."""
        return cls(restaurant=data["restaurant"], reviews=list(data.get("reviews", [])))

"""Items in the original single-table format, for tests."""

from __future__ import annotations

from typing import Any


def restaurant(name: str, **counts: int) -> dict[str, Any]:
    """A restaurant item (star counts default to 0)."""
    pk = f"REST#{name}"
    item = {"PK": pk, "SK": pk, "GSI1PK": pk, "GSI1SK": pk, "name": name, "cuisine": "Thai", "address": "1 Road"}
    for stars in ("five_stars", "four_stars", "three_stars", "two_stars", "one_stars"):
        item[stars] = counts.get(stars, 0)
    return item


def review(rest: str, rid: str, created_at: str = "2022-01-01T00:00:00", *, user: str | None = None,
           rating: int = 3) -> dict[str, Any]:
    """A review item of ``rest`` with id ``rid``."""
    user = user or f"u{rid}"
    return {"PK": f"USER#{user}", "SK": f"REST#{rest}", "GSI1PK": f"REST#{rest}", "GSI1SK": f"#REVIEW#{rid}",
            "id": rid, "restaurant": rest, "username": user, "rating": rating, "review": f"review of {rest}",
            "created_at": created_at}


def put_items(repo, items) -> None:
    """PutItem each item through the repository's client."""
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer().serialize
    for item in items:
        repo.client.put_item(TableName=repo.table_name, Item={k: ser(v) for k, v in item.items()})

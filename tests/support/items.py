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


def seed_items_path():
    """The original-format sample file from the shared workspace, if this machine has it.

    ``CACHEWARM_SEED_ITEMS`` names it explicitly; otherwise it is looked for next to
    the checkout (``../shared/data``) and in the workspace's shared folder.
    """
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    candidates = [os.environ.get("CACHEWARM_SEED_ITEMS", ""), root.parent / "shared" / "data" / "seed-items.jsonl",
                  Path("/work/shared/data/seed-items.jsonl")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return Path(candidates[1])


def seed_restaurants(table, restaurants: int = 40, reviews: int = 8) -> None:
    """``Bench 000``, ``Bench 001``, ... each with ``reviews`` reviews, put straight into the table."""
    items = []
    for r in range(restaurants):
        name = f"Bench {r:03d}"
        items.append(restaurant(name))
        items += [review(name, f"{r:03d}{i:037d}", f"2023-01-{i + 1:02d}T00:00:00") for i in range(reviews)]
    put_items(table, items)

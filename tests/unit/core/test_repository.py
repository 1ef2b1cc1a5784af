"""The repository against moto: schema, and the 5-newest-reviews read model."""

import pytest

from cachewarm.errors import TableNotFoundError
from cachewarm.repository import RestaurantRepository
from cachewarm.schema import BILLING_MODE, create_table_request
from tests.support.items import put_items
from tests.support.items import restaurant as make_restaurant
from tests.support.items import review as make_review


def put(repo, item):
    put_items(repo, [item])


def restaurant(name):
    return make_restaurant(name, five_stars=1)


def review(rest, rid, created_at, user=None):
    return make_review(rest, rid, created_at, user=user or f"user{rid}", rating=4)


def test_create_table_is_idempotent_and_builds_the_schema(repo):
    assert repo.create_table() is False
    table = repo.describe()
    request = create_table_request("Restaurants")
    assert table["KeySchema"] == request["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(request["AttributeDefinitions"], key=str)
    assert [(i["IndexName"], i["KeySchema"], i["Projection"]) for i in table["GlobalSecondaryIndexes"]] == [
        (i["IndexName"], i["KeySchema"], i["Projection"]) for i in request["GlobalSecondaryIndexes"]
    ]
    assert table["BillingModeSummary"]["BillingMode"] == BILLING_MODE
    assert table["StreamSpecification"] == request["StreamSpecification"]  # the change feed's stream


def test_summary_has_the_five_newest_reviews_not_the_highest_ids(repo):
    put(repo, restaurant("Thai Spot"))
    # ids sort opposite to time: "f…" is the oldest, "0…" the newest.
    dates = [f"2021-0{m}-01T00:00:00" for m in range(1, 9)]
    ids = ["f0", "e0", "d0", "c0", "b0", "a0", "10", "00"]
    for rid, created in zip(ids, dates, strict=True):
        put(repo, review("Thai Spot", rid, created))
    put(repo, review("Other", "ff", "2030-01-01T00:00:00"))
    summary = repo.get_summary("Thai Spot")
    assert summary.restaurant["name"] == "Thai Spot"
    assert "PK" not in summary.restaurant
    assert [r["id"] for r in summary.reviews] == ["00", "10", "a0", "b0", "c0"]
    assert summary.reviews[0]["rating"] == 4 and isinstance(summary.reviews[0]["rating"], int)


def test_unknown_restaurant_is_none(repo):
    assert repo.get_summary("Nope") is None


def test_missing_table_is_translated(repo):
    other = RestaurantRepository(repo.client, "Missing")
    with pytest.raises(TableNotFoundError) as info:
        other.get_summary("x")
    assert "table create" in str(info.value)


def test_delete_table(repo):
    assert repo.delete_table() is True
    assert repo.delete_table() is False


def test_add_review_is_one_transaction_with_version_bump(repo):
    put(repo, restaurant("Thai Spot"))
    calls = []
    repo.client.meta.events.register("before-call.dynamodb.*", lambda model, **kw: calls.append(model.name))
    _review, version = repo.add_review("Thai Spot", username="amy", rating=5, text="great",
                                      created_at="2026-01-01T00:00:00", review_id="ab" * 20)
    assert version == 1
    assert "TransactWriteItems" in calls and "PutItem" not in calls and "UpdateItem" not in calls
    _, version = repo.add_review("Thai Spot", username="bob", rating=5, text="good",
                                 created_at="2026-01-02T00:00:00", review_id="cd" * 20)
    assert version == 2
    summary = repo.get_summary("Thai Spot")
    assert summary.restaurant["five_stars"] == 3 and summary.version == 2
    assert [r["username"] for r in summary.reviews] == ["bob", "amy"]


def test_add_review_twice_or_to_a_missing_restaurant_fails_cleanly(repo):
    from cachewarm.errors import PermanentError

    put(repo, restaurant("Thai Spot"))
    repo.add_review("Thai Spot", username="amy", rating=4, text="x", created_at="2026-01-01T00:00:00",
                    review_id="1" * 40)
    with pytest.raises(PermanentError, match="already reviewed"):
        repo.add_review("Thai Spot", username="amy", rating=4, text="x", created_at="2026-01-02T00:00:00",
                        review_id="2" * 40)
    with pytest.raises(PermanentError, match="does not exist"):
        repo.add_review("Nope", username="amy", rating=4, text="x", created_at="2026-01-02T00:00:00",
                        review_id="3" * 40)
    assert repo.get_summary("Thai Spot").restaurant["four_stars"] == 1


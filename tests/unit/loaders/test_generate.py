"""The generator: byte-identical per seed, the original format, realistic and unique."""

from __future__ import annotations

import json
import re
import statistics
import tracemalloc
from collections import Counter

import pytest

from loaders import generate
from loaders.generate import generate_file, generate_items
from loaders.validate import Item, parse_line
from tests.support.items import seed_items_path

SEED_FILE = seed_items_path()
RESTAURANT_KEYS = ["PK", "SK", "GSI1PK", "GSI1SK", "name", "cuisine", "address", "five_stars", "four_stars",
                   "three_stars", "two_stars", "one_stars"]
REVIEW_KEYS = ["PK", "SK", "GSI1PK", "GSI1SK", "id", "restaurant", "username", "rating", "review", "created_at"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> list[dict]:
    path = tmp_path_factory.mktemp("gen") / "items.jsonl"
    lines = generate_file(path, restaurants=300, reviews_per_restaurant=20, seed=11)
    items = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(items) == lines
    return items


@pytest.mark.slow  # over a second: Faker pools, or whole files
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert generate_file(a, restaurants=40, reviews_per_restaurant=8, seed=3) == \
        generate_file(b, restaurants=40, reviews_per_restaurant=8, seed=3)
    generate_file(c, restaurants=40, reviews_per_restaurant=8, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.slow  # over a second: Faker pools, or whole files
def test_gzip_output_is_deterministic_too(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    generate_file(a, restaurants=20, seed=5)
    generate_file(b, restaurants=20, seed=5)
    assert a.read_bytes() == b.read_bytes() and a.read_bytes()[:2] == b"\x1f\x8b"


def test_attribute_names_order_and_types_match_the_original(sample):
    for item in sample:
        if item["PK"] == item["SK"]:
            assert list(item) == RESTAURANT_KEYS
            assert all(isinstance(item[k], int) for k in RESTAURANT_KEYS[7:])
            assert item["PK"] == item["GSI1PK"] == item["GSI1SK"] == f"REST#{item['name']}"
        else:
            assert list(item) == REVIEW_KEYS
            assert item["PK"] == f"USER#{item['username']}"
            assert item["SK"] == item["GSI1PK"] == f"REST#{item['restaurant']}"
            assert item["GSI1SK"] == f"#REVIEW#{item['id']}"
            assert re.fullmatch(r"[0-9a-f]{40}", item["id"])
            assert isinstance(item["rating"], int) and 1 <= item["rating"] <= 5
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", item["created_at"])


@pytest.mark.skipif(not SEED_FILE.exists(), reason=f"{SEED_FILE} is not on this machine")
def test_the_shape_is_the_seed_files_shape(sample):
    seed = [json.loads(line) for line in SEED_FILE.read_text().splitlines()]
    shapes = {tuple((k, type(v).__name__) for k, v in item.items()) for item in seed}
    ours = {tuple((k, type(v).__name__) for k, v in item.items()) for item in sample}
    assert ours == shapes


def test_keys_and_names_are_unique_and_star_counts_match_reviews(sample):
    keys = Counter((i["PK"], i["SK"]) for i in sample)
    assert max(keys.values()) == 1
    restaurants = {i["name"]: i for i in sample if i["PK"] == i["SK"]}
    assert len(restaurants) == 300
    ratings: dict[str, Counter] = {name: Counter() for name in restaurants}
    for i in sample:
        if i["PK"] != i["SK"]:
            ratings[i["restaurant"]][i["rating"]] += 1
    for name, item in restaurants.items():
        words = ("five", "four", "three", "two", "one")
        assert [item[f"{w}_stars"] for w in words] == [ratings[name][n] for n in (5, 4, 3, 2, 1)]


def test_review_counts_are_skewed_and_dates_span_years(sample):
    counts = Counter(i["restaurant"] for i in sample if i["PK"] != i["SK"])
    values = sorted(counts.values(), reverse=True)
    mean = statistics.mean(values)
    assert 15 <= mean <= 25  # around the requested 20
    assert values[0] >= 4 * mean  # a few restaurants have many
    assert statistics.median(values) < mean  # most have fewer than the mean
    years = {i["created_at"][:4] for i in sample if i["PK"] != i["SK"]}
    assert len(years) >= 8


@pytest.mark.slow  # over a second: Faker pools, or whole files
def test_every_generated_line_is_a_valid_item(tmp_path):
    path = tmp_path / "items.jsonl"
    generate_file(path, restaurants=30, seed=1)
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        assert isinstance(parse_line(raw, number), Item)


@pytest.mark.slow  # over a second: Faker pools, or whole files
def test_names_stay_unique_past_every_combination(monkeypatch):
    monkeypatch.setattr(generate, "COMPANY_POOL", 2)  # 2 x 24 labels = 48 plain names
    names = [i["name"] for i in generate_items(restaurants=150, reviews_per_restaurant=0, seed=2)]
    assert len(set(names)) == 150
    assert any(name.endswith(" 3") for name in names)  # third time round: branch numbers


def test_a_user_reviews_a_restaurant_at_most_once_even_when_users_are_scarce(monkeypatch):
    monkeypatch.setattr(generate, "USERNAME_POOL", 7)
    items = list(generate_items(restaurants=20, reviews_per_restaurant=30, seed=9))
    reviews = [(i["username"], i["restaurant"]) for i in items if i["PK"] != i["SK"]]
    assert len(reviews) == len(set(reviews))
    assert any("_" in user for user, _ in reviews)  # beyond the pool: numbered variants


@pytest.mark.slow  # over a second: Faker pools, or whole files
def test_memory_does_not_grow_with_the_output():
    def peak(restaurants: int) -> int:
        items = generate_items(restaurants=restaurants, reviews_per_restaurant=5, seed=1)
        next(items)  # the Faker pools are built: a fixed cost, whatever the size
        tracemalloc.start()
        for _ in items:
            pass
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    # tracemalloc counts every thread's allocations, and the session may still run other tests' daemon
    # threads: noise only ever adds, so the least of two runs is the generator's own peak.
    small, large = min(peak(300) for _ in range(2)), min(peak(6000) for _ in range(2))
    assert large < small + 64 * 1024  # 20x the output, a few KB more at most (the longest review list)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="restaurants"):
        next(generate_items(restaurants=0))
    with pytest.raises(ValueError, match="reviews_per_restaurant"):
        next(generate_items(restaurants=1, reviews_per_restaurant=-1))

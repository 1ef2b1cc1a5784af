"""Deterministic sample data in the original JSON-lines format.

One restaurant line, then that restaurant's reviews, for each restaurant::

    {"PK": "REST#<name>", "SK": "REST#<name>", "GSI1PK": "REST#<name>", "GSI1SK": "REST#<name>",
     "name", "cuisine", "address", "five_stars", ... "one_stars"}
    {"PK": "USER#<username>", "SK": "REST#<name>", "GSI1PK": "REST#<name>", "GSI1SK": "#REVIEW#<id>",
     "id", "restaurant", "username", "rating", "review", "created_at"}

Same attribute names, order, types and key patterns as the original data (and
``seed-items.jsonl``): ``id`` is 40 hex digits, ``created_at`` is ISO 8601 to
the second, the star counts add up to the restaurant's reviews.

Realistic where it matters to a cache: review counts per restaurant are skewed
(log-normal around the requested mean, so a few restaurants have many times
more), ``created_at`` spreads over years (from each restaurant's opening to
the end of 2024), ratings lean per restaurant. Names, addresses, usernames and
text come from Faker.

Deterministic: every random choice comes from ``random.Random(seed)`` or a
Faker seeded with ``seed``, so the same seed (and Faker version) gives a
byte-identical file. Constant memory: Faker builds bounded pools once; lines
are composed from them and written as they are made. Unique by construction,
with no set of seen names: restaurant ``i`` gets combination ``perm(i)`` of
(company, label) pools, and the ``n``-th time through all combinations a
branch number, like a chain's second location (``"Wilson-Hodges Thai 2"``).
Within a restaurant, reviewers are distinct users, so ``(PK, SK)`` never repeats.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

#: (label in the name, cuisine attribute), as in the original data.
LABELS = (
    ("Steaks", "American"), ("Burgers", "American"), ("Diner", "American"), ("BBQ", "Barbeque"),
    ("Smokehouse", "Barbeque"), ("Thai", "Thai"), ("Mexican", "Mexican"), ("Taqueria", "Mexican"),
    ("Italian", "Italian"), ("Trattoria", "Italian"), ("Pizzeria", "Italian"), ("Fine Dining", "Fine Dining"),
    ("Indian", "Indian"), ("Sushi", "Japanese"), ("Ramen", "Japanese"), ("Noodle House", "Chinese"),
    ("Dim Sum", "Chinese"), ("Bistro", "French"), ("Brasserie", "French"), ("Taverna", "Greek"),
    ("Pho", "Vietnamese"), ("Korean BBQ", "Korean"), ("Seafood", "Seafood"), ("Vegan Kitchen", "Vegan"),
)
COMPANY_POOL = 1200
USERNAME_POOL = 5000
SENTENCE_POOL = 4000
STREET_POOL = 3000
CITY_POOL = 1500
#: Reviews fall between a restaurant's opening and this moment (fixed, so output never depends on today).
EPOCH_START = 1325376000  # 2012-01-01T00:00:00Z
EPOCH_END = 1735689599  # 2024-12-31T23:59:59Z
#: Log-normal spread of review counts; sigma 1 puts the top 1% at about 10x the mean.
REVIEW_SIGMA = 1.0
#: No restaurant gets more than this many times the mean.
MAX_REVIEWS_FACTOR = 25
DEFAULT_REVIEWS = 20


class _Pools:
    """Everything drawn from Faker, once per seed; bounded whatever the output size."""

    def __init__(self, seed: int):
        from faker import Faker

        fake = Faker("en_US")
        fake.seed_instance(seed)
        self.companies = _unique_companies(fake)
        self.usernames = _unique(
            ("".join(ch for ch in fake.user_name() if ch.isalnum()) for _ in range(USERNAME_POOL * 2)),
            USERNAME_POOL,
        )
        self.sentences = [fake.sentence(nb_words=10) for _ in range(SENTENCE_POOL)]
        self.streets = [fake.street_address() for _ in range(STREET_POOL)]
        self.cities = [f"{fake.city()}, {fake.state_abbr()} {fake.zipcode()}" for _ in range(CITY_POOL)]


def _unique(values: Iterator[str], limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        if value and value not in seen:
            seen[value] = None
            if len(seen) == limit:
                break
    return list(seen)


def _unique_companies(fake: Any) -> list[str]:
    """Company names such that every "<company> <label>" is distinct from every other."""
    names: set[str] = set()
    companies: list[str] = []
    for _ in range(COMPANY_POOL * 3):
        company = fake.company() if len(companies) % 3 else f"{fake.last_name()}'s"
        candidates = {f"{company} {label}" for label, _ in LABELS}
        if candidates & names:
            continue
        names |= candidates
        companies.append(company)
        if len(companies) == COMPANY_POOL:
            break
    return companies


class _Permutation:
    """A bijection of range(n) with O(1) memory: i -> (a*i + c) mod n, gcd(a, n) = 1."""

    def __init__(self, n: int, rng: random.Random):
        self.n = n
        a = rng.randrange(1, n) if n > 1 else 1
        while math.gcd(a, n) != 1:
            a = a % (n - 1) + 1
        self.a, self.c = a, rng.randrange(n)

    def __call__(self, i: int) -> int:
        return (self.a * i + self.c) % self.n


def generate_items(
    *, restaurants: int, reviews_per_restaurant: int = DEFAULT_REVIEWS, seed: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield items (restaurant, then its reviews) in the original format, deterministically."""
    if restaurants < 1:
        raise ValueError("restaurants must be at least 1")
    if reviews_per_restaurant < 0:
        raise ValueError("reviews_per_restaurant must be 0 or more")
    rng = random.Random(seed)
    pools = _Pools(seed)
    combos = len(pools.companies) * len(LABELS)
    perm = _Permutation(combos, rng)
    users = max(USERNAME_POOL, restaurants * reviews_per_restaurant // 3)
    mu = math.log(reviews_per_restaurant) - REVIEW_SIGMA**2 / 2 if reviews_per_restaurant else 0.0
    cap = min(users, max(1, reviews_per_restaurant) * MAX_REVIEWS_FACTOR)
    sentences, nsentences = pools.sentences, len(pools.sentences)

    def username(index: int) -> str:
        base = pools.usernames[index % len(pools.usernames)]
        rounds = index // len(pools.usernames)
        return base if rounds == 0 else f"{base}_{rounds}"  # pool names are alphanumeric: no clash

    def review_text() -> str:
        paragraphs = []
        for _ in range(rng.randint(1, 2)):
            paragraphs.append(" ".join(sentences[int(rng.random() * nsentences)]
                                       for _ in range(rng.randint(2, 4))))
        return "\n".join(paragraphs)

    for i in range(restaurants):
        combo = perm(i)
        company = pools.companies[combo // len(LABELS)]
        label, cuisine = LABELS[combo % len(LABELS)]
        branch = i // combos
        name = f"{company} {label}" + (f" {branch + 1}" if branch else "")
        key = f"REST#{name}"
        count = 0
        if reviews_per_restaurant:
            count = min(cap, round(rng.lognormvariate(mu, REVIEW_SIGMA)))
        quality = rng.random()
        ratings = [min(5, max(1, round(rng.gauss(1 + 4 * quality, 1.1)))) for _ in range(count)]
        stars = [ratings.count(n) for n in (5, 4, 3, 2, 1)]
        address = f"{rng.choice(pools.streets)}, {rng.choice(pools.cities)}"
        yield {
            "PK": key, "SK": key, "GSI1PK": key, "GSI1SK": key, "name": name, "cuisine": cuisine,
            "address": address, "five_stars": stars[0], "four_stars": stars[1], "three_stars": stars[2],
            "two_stars": stars[3], "one_stars": stars[4],
        }
        opened = EPOCH_START + int(rng.random() * (EPOCH_END - EPOCH_START) * 0.8)
        for user_index, rating in zip(rng.sample(range(users), count), ratings, strict=True):
            review_id = f"{rng.getrandbits(160):040x}"
            user = username(user_index)
            created = opened + int(rng.random() * (EPOCH_END - opened))
            yield {
                "PK": f"USER#{user}", "SK": key, "GSI1PK": key, "GSI1SK": f"#REVIEW#{review_id}",
                "id": review_id, "restaurant": name, "username": user, "rating": rating,
                "review": review_text(),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)),
            }


def write_items(handle: TextIO, *, restaurants: int, reviews_per_restaurant: int = DEFAULT_REVIEWS,
                seed: int = 0) -> int:
    """Write the generated lines to an open text handle; return how many."""
    lines = 0
    dumps = json.dumps
    for item in generate_items(restaurants=restaurants, reviews_per_restaurant=reviews_per_restaurant, seed=seed):
        handle.write(dumps(item))
        handle.write("\n")
        lines += 1
    return lines


def generate_file(
    path: str | os.PathLike[str], *, restaurants: int, reviews_per_restaurant: int = DEFAULT_REVIEWS,
    seed: int = 0,
) -> int:
    """Write a sample data file; return the number of lines.

    ``path`` ending in ``.gz`` writes gzip (with a fixed header, so it is
    byte-identical too); ``"-"`` writes to stdout. The file appears under its
    name only when complete (written to a temporary name, then renamed).
    """
    if os.fspath(path) == "-":
        return write_items(sys.stdout, restaurants=restaurants, reviews_per_restaurant=reviews_per_restaurant,
                           seed=seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as raw:
            binary: Any = (gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                           if target.suffix == ".gz" else raw)
            with io.TextIOWrapper(binary, encoding="utf-8", newline="\n", write_through=False) as text:
                lines = write_items(text, restaurants=restaurants, reviews_per_restaurant=reviews_per_restaurant,
                                    seed=seed)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return lines

"""Helpers for tests that read inputs back through the loaders' reader (here and in tests/unit/workers)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from hypothesis import strategies as st
from moto import mock_aws

from loaders.reader import Source, iter_blocks, open_source
from loaders.validate import Item, parse_line

#: One line of text without a newline (lone surrogates cannot be encoded).
LINE = st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40)


def lines_of(path: Any, **kwargs: Any) -> list[tuple[int, Any]]:
    """(line number, raw) for every line the reader yields."""
    source = open_source(path)
    with source.open(kwargs.get("start", 0)) as stream:
        out = []
        for block in iter_blocks(stream, **kwargs):
            out += list(enumerate(block.lines, start=block.first_line))
        return out


def numbered_items(count: int) -> str:
    """``count`` JSON lines with keys p0, p1, ..."""
    return "".join(json.dumps({"PK": f"p{i}", "SK": "s"}) + "\n" for i in range(count))


@contextmanager
def s3_with(text: str, monkeypatch: Any) -> Iterator[Any]:
    """A moto S3 client holding ``text`` as s3://data/items.jsonl and, gzipped, s3://data/items.jsonl.gz."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="items.jsonl", Body=text.encode())
        s3.put_object(Bucket="data", Key="items.jsonl.gz", Body=gzip.compress(text.encode()))
        yield s3


def keys_in_ranges(source: Source, ranges: Iterable[tuple[int, int, int]]) -> list[str]:
    """The partition keys of the lines in each (start, end, first line) range of ``source``, in order."""
    keys = []
    for start, end, first in ranges:
        with source.open(start) as stream:
            for block in iter_blocks(stream, start=start, end=end, first_line=first):
                for number, raw in enumerate(block.lines, start=block.first_line):
                    item = parse_line(raw, number)
                    assert isinstance(item, Item), item
                    keys.append(item.key[0])
    return keys

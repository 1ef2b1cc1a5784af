"""Chunk planning (workers/load_plan.py): line-aligned ranges that the loaders' reader reads back exactly."""

from __future__ import annotations

import gzip
import json

import boto3
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from loaders.reader import iter_blocks, open_source
from loaders.validate import parse_line
from workers.load_plan import plan_chunks


def _lines_of(path, **kwargs):
    """(line number, raw) for every line the reader yields."""
    source = open_source(path)
    with source.open(kwargs.get("start", 0)) as stream:
        out = []
        for block in iter_blocks(stream, **kwargs):
            out += list(enumerate(block.lines, start=block.first_line))
        return out


LINE = st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(LINE, min_size=1, max_size=60), per_chunk=st.integers(1, 9), trailing=st.booleans())
def test_chunks_partition_the_file_and_keep_line_numbers(tmp_path_factory, lines, per_chunk, trailing):
    path = tmp_path_factory.mktemp("c") / "in.jsonl"
    data = "\n".join(lines) + ("\n" if trailing else "")
    path.write_bytes(data.encode())
    source = open_source(path)
    with source.open() as stream:
        chunks, total, size = plan_chunks(stream, chunk_lines=per_chunk)
    assert size == len(data.encode())
    whole = _lines_of(path)
    assert total == len(whole)
    rebuilt = []
    for chunk in chunks:
        part = _lines_of(path, start=chunk.start, end=chunk.end, first_line=chunk.first_line, block_bytes=7)
        assert len(part) == chunk.lines
        rebuilt += part
    assert rebuilt == whole


def test_gzip_input_reads_like_plain_and_chunks_by_decompressed_offset(tmp_path):
    text = "".join(json.dumps({"PK": f"p{i}", "SK": "s"}) + "\n" for i in range(500))
    plain, packed = tmp_path / "a.jsonl", tmp_path / "a.jsonl.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    assert open_source(packed).compressed and not open_source(plain).compressed
    assert _lines_of(packed, block_bytes=1000) == _lines_of(plain, block_bytes=1000)
    with open_source(packed).open() as stream:
        chunks, total, _ = plan_chunks(stream, chunk_lines=120)
    assert total == 500 and len(chunks) == 5
    last = chunks[-1]
    assert _lines_of(packed, start=last.start, end=last.end, first_line=last.first_line) == _lines_of(plain)[480:]


def test_gzip_input_is_chunked_by_decompressed_offset(tmp_path):
    text = "".join(json.dumps({"PK": f"p{i}", "SK": "s"}) + "\n" for i in range(500))
    plain, packed = tmp_path / "a.jsonl", tmp_path / "a.jsonl.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    with open_source(packed).open() as stream:
        chunks, total, _ = plan_chunks(stream, chunk_lines=120)
    assert total == 500 and len(chunks) == 5
    last = chunks[-1]
    assert _lines_of(packed, start=last.start, end=last.end, first_line=last.first_line) == _lines_of(plain)[480:]


def test_chunks_of_an_s3_object_are_read_back_with_ranged_gets(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    text = "".join(json.dumps({"PK": f"p{i}", "SK": "s"}) + "\n" for i in range(100))
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="items.jsonl", Body=text.encode())
        s3.put_object(Bucket="data", Key="items.jsonl.gz", Body=gzip.compress(text.encode()))
        plain = open_source("s3://data/items.jsonl", s3_client=s3)
        packed = open_source("s3://data/items.jsonl.gz", s3_client=s3)
        with plain.open() as stream:
            chunks, total, _ = plan_chunks(stream, chunk_lines=30)
        assert total == 100
        for source in (plain, packed):
            got = []
            for chunk in chunks:
                with source.open(chunk.start) as stream:
                    for block in iter_blocks(stream, start=chunk.start, end=chunk.end, first_line=chunk.first_line):
                        got += [parse_line(raw, n) for n, raw in enumerate(block.lines, start=block.first_line)]
            assert [item.key[0] for item in got] == [f"p{i}" for i in range(100)]

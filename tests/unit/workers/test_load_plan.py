"""Chunk planning (workers/load_plan.py): line-aligned ranges that the loaders' reader reads back exactly."""

from __future__ import annotations

import gzip

from hypothesis import given, settings
from hypothesis import strategies as st

from loaders.reader import open_source
from tests.unit.loaders.reading import LINE, keys_in_ranges, lines_of, numbered_items, s3_with
from workers.load_plan import plan_chunks


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
    whole = lines_of(path)
    assert total == len(whole)
    rebuilt = []
    for chunk in chunks:
        part = lines_of(path, start=chunk.start, end=chunk.end, first_line=chunk.first_line, block_bytes=7)
        assert len(part) == chunk.lines
        rebuilt += part
    assert rebuilt == whole


def test_gzip_input_is_chunked_by_decompressed_offset(tmp_path):
    text = numbered_items(500)
    plain, packed = tmp_path / "a.jsonl", tmp_path / "a.jsonl.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    with open_source(packed).open() as stream:
        chunks, total, _ = plan_chunks(stream, chunk_lines=120)
    assert total == 500 and len(chunks) == 5
    last = chunks[-1]
    assert lines_of(packed, start=last.start, end=last.end, first_line=last.first_line) == lines_of(plain)[480:]


def test_chunks_of_an_s3_object_are_read_back_with_ranged_gets(monkeypatch):
    with s3_with(numbered_items(100), monkeypatch) as s3:
        plain = open_source("s3://data/items.jsonl", s3_client=s3)
        packed = open_source("s3://data/items.jsonl.gz", s3_client=s3)
        with plain.open() as stream:
            chunks, total, _ = plan_chunks(stream, chunk_lines=30)
        assert total == 100
        ranges = [(chunk.start, chunk.end, chunk.first_line) for chunk in chunks]
        for source in (plain, packed):
            assert keys_in_ranges(source, ranges) == [f"p{i}" for i in range(100)]

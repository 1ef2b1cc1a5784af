"""Streaming reader, validator and checkpoints: pure Python, plus moto for s3:// sources."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders.checkpoint import Checkpoint
from loaders.errors import CheckpointError, InputError
from loaders.reader import TooLong, open_source
from loaders.report import BlockResult
from loaders.validate import MAX_ITEM_BYTES, Item, Reject, parse_line
from tests.unit.loaders.reading import LINE, keys_in_ranges, lines_of, numbered_items, s3_with


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(LINE, max_size=40), trailing=st.booleans(), block=st.integers(1, 64))
def test_every_line_comes_back_once_with_its_number(tmp_path_factory, lines, trailing, block):
    path = tmp_path_factory.mktemp("r") / "in.jsonl"
    data = "\n".join(lines) + ("\n" if trailing and lines else "")
    path.write_bytes(data.encode())
    got = lines_of(path, block_bytes=block, max_line=1 << 20)
    expected = data.encode().split(b"\n")
    if data.endswith("\n") or data == "":
        expected.pop()
    assert [raw for _, raw in got] == expected
    assert [n for n, _ in got] == list(range(1, len(expected) + 1))


def _line_ranges(data: bytes, per: int) -> list[tuple[int, int, int]]:
    """(start, end, first line) of every run of ``per`` lines: line-aligned ranges, worked out by hand."""
    ranges, start, first = [], 0, 1
    lines = data.splitlines(keepends=True)
    for i in range(0, len(lines), per):
        end = start + sum(len(line) for line in lines[i:i + per])
        ranges.append((start, end, first))
        start, first = end, first + per
    return ranges


def test_gzip_input_reads_like_plain_and_seeks_by_decompressed_offset(tmp_path):
    text = numbered_items(500)
    plain, packed = tmp_path / "a.jsonl", tmp_path / "a.jsonl.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    assert open_source(packed).compressed and not open_source(plain).compressed
    assert lines_of(packed, block_bytes=1000) == lines_of(plain, block_bytes=1000)
    start, end, first = _line_ranges(text.encode(), 120)[-1]
    assert first == 481
    assert lines_of(packed, start=start, end=end, first_line=first) == lines_of(plain)[480:]


def test_a_line_longer_than_the_limit_is_skipped_not_held(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b"x" * 5000 + b"\n" + b'{"b": 2}\n' + b"y" * 3000)
    got = lines_of(path, block_bytes=256, max_line=1000)
    assert [n for n, _ in got] == [1, 2, 3, 4]
    assert got[0][1] == b'{"a": 1}' and got[2][1] == b'{"b": 2}'
    assert isinstance(got[1][1], TooLong) and got[1][1].length == 5000
    assert isinstance(got[3][1], TooLong) and got[3][1].length == 3000  # the last line has no newline
    assert parse_line(got[1][1], 2).reason.startswith("line is 5,000 bytes")


def test_crlf_and_bom_are_tolerated(tmp_path):
    path = tmp_path / "dos.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"PK": "a", "SK": "b"}\r\n{"PK": "c", "SK": "d"}\r\n')
    items = [parse_line(raw, n) for n, raw in lines_of(path)]
    assert [i.key for i in items] == [("a", "b"), ("c", "d")]


def test_unusable_inputs_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="directory"):
        open_source(tmp_path)
    with pytest.raises(InputError, match="only local paths and s3://"):
        open_source("https://example.com/x.jsonl")
    assert InputError("x").exit_code == 2


def test_s3_objects_are_read_with_ranged_gets(monkeypatch):
    text = numbered_items(100)
    with s3_with(text, monkeypatch) as s3:
        plain = open_source("s3://data/items.jsonl", s3_client=s3)
        packed = open_source("s3://data/items.jsonl.gz", s3_client=s3)
        assert packed.compressed and not plain.compressed
        for source in (plain, packed):
            assert keys_in_ranges(source, _line_ranges(text.encode(), 30)) == [f"p{i}" for i in range(100)]
        with pytest.raises(InputError, match="no such object"):
            open_source("s3://data/nope.jsonl", s3_client=s3)
        with pytest.raises(InputError, match="expected s3://BUCKET/KEY"):
            open_source("s3://data", s3_client=s3)


# -- validator ------------------------------------------------------------------------------

GOOD = {"PK": "USER#amy", "SK": "REST#Thai", "GSI1PK": "REST#Thai", "GSI1SK": "#REVIEW#01", "rating": 5,
        "score": 4.25, "tags": ["a", 1, None, True], "meta": {"k": "v"}, "note": ""}


def test_a_good_line_becomes_a_typed_item():
    item = parse_line(json.dumps(GOOD).encode(), 7)
    assert isinstance(item, Item)
    assert item.line == 7 and item.key == ("USER#amy", "REST#Thai") and item.restaurant == "Thai"
    assert item.av["rating"] == {"N": "5"}
    assert item.av["score"] == {"N": "4.25"}  # the number's text, never a float's repr
    assert item.av["tags"] == {"L": [{"S": "a"}, {"N": "1"}, {"NULL": True}, {"BOOL": True}]}
    assert item.av["meta"] == {"M": {"k": {"S": "v"}}}
    assert item.av["note"] == {"S": ""}


def _with(**changes):
    data = {k: v for k, v in GOOD.items() if k not in changes or changes[k] is not ...}
    data.update({k: v for k, v in changes.items() if v is not ...})
    return json.dumps(data).encode()


@pytest.mark.parametrize(("raw", "reason"), [
    (b"not json", "not valid JSON"),
    (b'{"PK": "a", "SK": ', "not valid JSON"),
    (b"[1, 2]", "expected a JSON object, got an array"),
    (b'"text"', "expected a JSON object, got a string"),
    (b"42", "expected a JSON object, got a number"),
    (b"null", "expected a JSON object, got null"),
    (b"", "blank line"),
    (b"   \t", "blank line"),
    (b'{"PK": "\xff"}', "not valid UTF-8"),
    (_with(PK=...), "missing key attribute PK"),
    (_with(SK=...), "missing key attribute SK"),
    (_with(PK=""), "key attribute PK is empty"),
    (_with(SK=""), "key attribute SK is empty"),
    (_with(PK=12), "key attribute PK must be a string, got a number"),
    (_with(SK=None), "key attribute SK must be a string, got null"),
    (_with(SK=["x"]), "key attribute SK must be a string, got an array"),
    (_with(GSI1PK=3), "key attribute GSI1PK must be a string"),
    (_with(GSI1SK=""), "key attribute GSI1SK is empty"),
    (_with(PK="x" * 2049), "DynamoDB allows at most 2,048"),
    (_with(SK="x" * 1025), "DynamoDB allows at most 1,024"),
    (_with(review="x" * (MAX_ITEM_BYTES + 1)), "over DynamoDB's limit of 409,600 bytes"),
    (_with(review="é" * (MAX_ITEM_BYTES // 2 + 1)), "over DynamoDB's limit"),  # counted in UTF-8 bytes
    (b'{"PK": "a", "SK": "b", "n": NaN}', "NaN is not a number DynamoDB can store"),
    (b'{"PK": "a", "SK": "b", "n": -Infinity}', "-Infinity is not a number"),
    (b'{"PK": "a", "SK": "b", "n": 1234567890123456789012345678901234567891}', "40 significant digits"),
    (b'{"PK": "a", "SK": "b", "n": 1e126}', "out of DynamoDB's number range"),
    (b'{"PK": "a", "SK": "b", "": 1}', "an attribute name is empty"),
    (b'{"PK": "a", "SK": "b", "s": "\\ud800"}', "lone surrogate"),
    (b'{"PK": "a", "SK": "b", "d": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper"),
])
def test_bad_lines_are_rejected_with_a_reason(raw, reason):
    result = parse_line(raw, 3)
    assert isinstance(result, Reject), result
    assert result.line == 3 and reason in result.reason
    assert result.text == raw.decode("utf-8", "backslashreplace").rstrip("\r")


def test_an_item_just_under_the_limit_is_accepted():
    assert isinstance(parse_line(_with(review="x" * (MAX_ITEM_BYTES - 400)), 1), Item)


def test_restaurant_is_taken_from_gsi1pk_only_for_restaurant_partitions():
    assert parse_line(_with(GSI1PK="OTHER#x"), 1).restaurant is None
    assert parse_line(_with(GSI1PK=...), 1).restaurant is None
    assert parse_line(_with(GSI1PK="REST#Ramen Bar"), 1).restaurant == "Ramen Bar"


# -- checkpoints --------------------------------------------------------------------------


def test_checkpoint_round_trip_and_torn_last_line(tmp_path):
    path = tmp_path / "ck"
    identity = {"uri": "/x", "size": 10, "mtime_ns": 1}
    first = Checkpoint(path, identity, 1024)
    first.open(resume=False)
    first.record(BlockResult(index=0, first_line=1, lines=5, written=4, rejects=[Reject(2, "r", "t")]))
    first.record(BlockResult(index=2, first_line=11, lines=5, written=5))
    first.close()
    with open(path, "a") as handle:
        handle.write('{"block": 3, "first')  # a crash mid-write
    again = Checkpoint(path, identity, 1024)
    done = again.load()
    assert done == {0: {"lines": 5, "written": 4, "rejected": 1, "duplicates": 0},
                    2: {"lines": 5, "written": 5, "rejected": 0, "duplicates": 0}}
    again.open(resume=True)
    again.record(BlockResult(index=1, first_line=6, lines=5, written=5))
    again.remove()
    assert not path.exists()


def test_checkpoint_of_another_input_is_refused(tmp_path):
    path = tmp_path / "ck"
    ck = Checkpoint(path, {"uri": "/a", "size": 1}, 1024)
    ck.open(resume=False)
    ck.close()
    with pytest.raises(CheckpointError, match="belongs to another input"):
        Checkpoint(path, {"uri": "/a", "size": 2}, 1024).load()
    path.write_text("garbage\n")
    with pytest.raises(CheckpointError, match="not a cachewarm load checkpoint"):
        Checkpoint(path, {"uri": "/a", "size": 1}, 1024).load()
    assert Checkpoint(tmp_path / "none", {}, 1).load() == {}

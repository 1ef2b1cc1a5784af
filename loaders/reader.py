"""Streaming JSON-lines input: local files or ``s3://`` objects, plain or gzip, read in blocks.

Memory stays constant whatever the input size: the file is read in blocks of
about :data:`BLOCK_BYTES`, each cut at its last newline, so a block always holds
whole lines and a line number is known for every line. Block boundaries depend
only on the bytes of the file and the block size, which lets a checkpoint name
finished blocks by index.

A line longer than :data:`MAX_LINE_BYTES` is never held in memory whole: it is
skipped to its newline and reported as :class:`TooLong` (DynamoDB's item limit
is 400 KB, so such a line could never be written anyway).

Offsets (``start``/``end``) are positions in the *decompressed* stream. A plain
file seeks to them; a gzip stream is decompressed and discarded up to ``start``,
since gzip has no random access.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loaders.errors import InputError, LoadFailed

#: Bytes read per block: about 800 lines of the original format, 32 batches.
#: Enough to keep a writer's threads busy between blocks; small because a block's
#: items, as Python objects, take about 6x its bytes and each writer holds two
#: (measured: 1 MB blocks cost each writer 10 MB more at the same speed).
BLOCK_BYTES = 512 << 10
#: Longest line we hold in memory. Generous next to DynamoDB's 400 KB item limit,
#: because JSON escapes can make a line several times larger than its item.
MAX_LINE_BYTES = 4 << 20
#: How much of an over-long line is kept for the rejects file.
TOO_LONG_HEAD = 1024

GZIP_MAGIC = b"\x1f\x8b"


class RawInput(Protocol):
    """What a source opens: a file handle, a botocore ``StreamingBody``, or nothing left to read."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all of them for -1); b"" at the end."""
        ...

    def close(self) -> None:
        """Release the handle."""
        ...


@dataclass(frozen=True)
class TooLong:
    """Stands in for a line longer than :data:`MAX_LINE_BYTES`: its length and first bytes."""

    length: int
    head: bytes


@dataclass
class Block:
    """Whole lines read together. ``lines`` hold raw bytes without the newline."""

    index: int
    offset: int  # decompressed offset of the block's first byte
    first_line: int  # 1-based number of lines[0]
    lines: list[bytes | TooLong]
    nbytes: int  # decompressed bytes the block covers, newlines included
    source_bytes: int  # bytes of the underlying file or object this block accounts for (progress)


# -- sources -----------------------------------------------------------------------


class Source:
    """Where the input lives. Subclasses open the raw (possibly compressed) bytes."""

    uri: str
    size: int  # raw bytes
    compressed: bool

    def open_raw(self, start: int = 0) -> RawInput:
        """The raw bytes from ``start`` (an offset of the raw file)."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records to recognise this exact input again."""
        raise NotImplementedError

    def open(self, start: int = 0) -> Stream:
        """The decompressed stream, positioned at decompressed offset ``start``."""
        if not self.compressed:
            return Stream(self.open_raw(start), compressed=False, base=start)
        stream = Stream(self.open_raw(0), compressed=True, base=0)
        stream.skip(start)
        return stream

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalSource(Source):
    """A file on this machine."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.uri = str(path)
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise InputError(f"{self.uri}: no such file") from None
        except OSError as exc:
            raise InputError(f"{self.uri}: {exc.strerror or exc}") from None
        if self.path.is_dir():
            raise InputError(f"{self.uri} is a directory, not a JSON-lines file")
        self.size = stat.st_size
        self._stat = stat
        try:
            with open(self.path, "rb") as handle:
                self.compressed = handle.read(2) == GZIP_MAGIC
        except OSError as exc:
            raise InputError(f"{self.uri}: {exc.strerror or exc}") from None

    def open_raw(self, start: int = 0) -> RawInput:
        """Open and seek."""
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except OSError as exc:
            raise InputError(f"{self.uri}: {exc.strerror or exc}") from None
        if start:
            handle.seek(start)
        return handle

    def identity(self) -> dict[str, Any]:
        """Absolute path, size and modification time."""
        return {"uri": str(self.path.resolve()), "size": self._stat.st_size, "mtime_ns": self._stat.st_mtime_ns}


class S3Reads(Protocol):
    """The two calls of a boto3 S3 client that :class:`S3Source` makes (typed so without mypy-boto3-s3)."""

    def head_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]:
        """HeadObject."""
        ...

    def get_object(self, *, Bucket: str, Key: str, Range: str = ...) -> Mapping[str, Any]:
        """GetObject (``Body`` is a botocore ``StreamingBody``)."""
        ...


class S3Source(Source):
    """An object in S3, read with ranged GETs (so Celery chunks never download the whole object)."""

    def __init__(self, uri: str, client: S3Reads):
        rest = uri[len("s3://"):]
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise InputError(f"{uri}: expected s3://BUCKET/KEY")
        self.uri, self.bucket, self.key, self.client = uri, bucket, key, client
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = client.head_object(Bucket=bucket, Key=key)
            self.size = int(head["ContentLength"])
            self.etag = head.get("ETag", "")
            self.compressed = head.get("ContentEncoding") == "gzip" or (
                self.size >= 2 and self._get(Range="bytes=0-1").read() == GZIP_MAGIC
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                raise InputError(f"{uri}: no such object") from None
            raise InputError(f"{uri}: {code or exc}") from None
        except BotoCoreError as exc:
            raise InputError(f"{uri}: {exc}") from None

    def _get(self, **kwargs: str) -> RawInput:
        body: RawInput = self.client.get_object(Bucket=self.bucket, Key=self.key, **kwargs)["Body"]
        return body

    def open_raw(self, start: int = 0) -> RawInput:
        """A streaming body from ``start`` (one ranged GET)."""
        if start >= self.size:
            return _Empty()
        return self._get(Range=f"bytes={start}-") if start else self._get()

    def identity(self) -> dict[str, Any]:
        """URI, size and ETag."""
        return {"uri": self.uri, "size": self.size, "etag": self.etag}


class _Empty:
    def read(self, n: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


def open_source(uri: str | os.PathLike[str], *, s3_client: S3Reads | None = None, region: str | None = None) -> Source:
    """Open a local path or an ``s3://bucket/key`` URI (raises :class:`InputError` if unusable)."""
    text = os.fspath(uri)
    if text.startswith("s3://"):
        if s3_client is None:
            s3_client = _s3_client(region)
        return S3Source(text, s3_client)
    if "://" in text:
        raise InputError(f"{text}: only local paths and s3:// URIs are supported")
    return LocalSource(text)


def _s3_client(region: str | None) -> S3Reads:
    import boto3
    from botocore.config import Config

    config = Config(region_name=region, retries={"mode": "standard", "max_attempts": 6})
    client: S3Reads = boto3.session.Session().client("s3", config=config)
    return client


class Stream:
    """Decompressed bytes of a source, with the raw position for progress."""

    def __init__(self, raw: RawInput, *, compressed: bool, base: int):
        self.raw = raw
        self.compressed = compressed
        self._raw_read = 0
        self._base = base
        self._data: gzip.GzipFile | RawInput = (
            gzip.GzipFile(fileobj=_Counting(raw, self), mode="rb") if compressed else raw)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the input."""
        out = bytearray()
        try:
            while len(out) < size:
                piece = self._data.read(size - len(out))
                if not piece:
                    break
                if not self.compressed:
                    self._raw_read += len(piece)
                out += piece
        except (OSError, EOFError, zlib.error) as exc:
            raise LoadFailed(f"cannot read the input: {exc}") from None
        return bytes(out)

    def skip(self, size: int) -> None:
        """Read and discard ``size`` decompressed bytes (gzip has no seek)."""
        while size > 0:
            piece = self.read(min(size, BLOCK_BYTES))
            if not piece:
                return
            size -= len(piece)

    def raw_position(self) -> int:
        """How far into the raw file or object we have read."""
        return self._base + self._raw_read

    def close(self) -> None:
        """Close the underlying handle."""
        if self.compressed:
            self._data.close()
        close = getattr(self.raw, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Counting:
    """File-like wrapper that counts raw bytes read (compressed progress)."""

    def __init__(self, raw: RawInput, owner: Stream):
        self.raw, self.owner = raw, owner

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.owner._raw_read += len(data)
        return data

    def seek(self, offset: int, /) -> int:
        # GzipFile seeks its file only to rewind, which a stream read forward never asks for.
        raise io.UnsupportedOperation("a streamed input cannot seek")

    def close(self) -> None:
        pass


# -- blocks of lines ------------------------------------------------------------


class _BlockCursor:
    """Where a block read stands: bytes left in the range, and the next block's offset, line and index."""

    def __init__(self, stream: Stream, *, start: int, end: int | None, first_line: int):
        self.stream = stream
        self.remaining = None if end is None else max(0, end - start)
        self.offset, self.line_no, self.index = start, first_line, 0
        self.last_raw = stream.raw_position()

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes, never past the range's end."""
        if self.remaining is not None:
            size = min(size, self.remaining)
        if size <= 0:
            return b""
        data = self.stream.read(size)
        if self.remaining is not None:
            self.remaining -= len(data)
        return data

    def block(self, lines: list[bytes | TooLong], nbytes: int) -> Block:
        """The next block of ``lines`` covering ``nbytes`` decompressed bytes; advance past it."""
        raw = self.stream.raw_position()
        source_bytes = (raw - self.last_raw) if self.stream.compressed else nbytes
        self.last_raw = raw
        block = Block(self.index, self.offset, self.line_no, lines, nbytes, source_bytes)
        self.offset += nbytes
        self.line_no += len(lines)
        self.index += 1
        return block


def iter_blocks(
    stream: Stream,
    *,
    start: int = 0,
    end: int | None = None,
    first_line: int = 1,
    block_bytes: int = BLOCK_BYTES,
    max_line: int = MAX_LINE_BYTES,
) -> Iterator[Block]:
    """Yield blocks of whole lines from ``stream`` (positioned at ``start``) up to ``end``.

    The last line may lack its newline. Blank lines are kept (the validator
    rejects them), so every line of the input appears exactly once, numbered.
    """
    cursor = _BlockCursor(stream, start=start, end=end, first_line=first_line)
    carry = b""
    while True:
        data = cursor.read(block_bytes)
        at_end = len(data) == 0
        buf = carry + data if carry else data
        if not buf:
            return
        if at_end:
            body, carry = buf, b""
        else:
            cut = buf.rfind(b"\n")
            if cut < 0:
                if len(buf) <= max_line:
                    carry = buf  # a long line in progress: read on
                    continue
                too_long, nbytes, carry = _skip_long_line(buf, cursor.read)
                yield cursor.block([too_long], nbytes)
                continue
            body, carry = buf[: cut + 1], buf[cut + 1:]
        pieces = body.split(b"\n")
        if body.endswith(b"\n"):
            pieces.pop()
        lines: list[bytes | TooLong] = [
            TooLong(len(piece), piece[:TOO_LONG_HEAD]) if len(piece) > max_line else piece for piece in pieces
        ]
        yield cursor.block(lines, len(body))
        if at_end:
            return


def _skip_long_line(buf: bytes, read: Callable[[int], bytes]) -> tuple[TooLong, int, bytes]:
    """Consume the rest of an over-long line; return it as TooLong, the bytes covered, and what follows."""
    head, length = buf[:TOO_LONG_HEAD], len(buf)
    while True:
        piece = read(BLOCK_BYTES)
        if not piece:
            return TooLong(length, head), length, b""
        newline = piece.find(b"\n")
        if newline >= 0:
            length += newline
            return TooLong(length, head), length + 1, piece[newline + 1:]
        length += len(piece)

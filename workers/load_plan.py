"""Cut a load into Celery-sized chunks: line-aligned byte ranges of the decompressed input.

A ``cachewarm.load_chunk`` task gets one :class:`Chunk` (offsets and the number
of its first line), never items; it reads its range with the loaders' reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from loaders.reader import BLOCK_BYTES, Stream


@dataclass(frozen=True)
class Chunk:
    """A line-aligned range of the decompressed input: what a Celery ``load_chunk`` task gets."""

    index: int
    start: int
    end: int
    first_line: int
    lines: int

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form (task arguments)."""
        return {"index": self.index, "start": self.start, "end": self.end, "first_line": self.first_line,
                "lines": self.lines}


def plan_chunks(stream: Stream, *, chunk_lines: int) -> tuple[list[Chunk], int, int]:
    """Scan the whole input once, counting lines; cut it into ranges of ``chunk_lines`` lines.

    Returns ``(chunks, total_lines, total_bytes)``. Only offsets are kept, so a
    billion-line file costs a list of a few thousand chunks.
    """
    if chunk_lines < 1:
        raise ValueError("chunk_lines must be at least 1")
    chunks: list[Chunk] = []
    pos = 0  # decompressed bytes scanned
    lines = 0  # newlines seen
    chunk_start, chunk_first = 0, 1
    last_byte = b""
    while True:
        piece = stream.read(BLOCK_BYTES)
        if not piece:
            break
        count = piece.count(b"\n")
        # Whole chunks that end inside this piece: find the exact newline of each.
        search = 0
        while lines + count >= chunk_first - 1 + chunk_lines and count > 0:
            need = chunk_first - 1 + chunk_lines - lines  # newlines still needed in this piece
            idx = search - 1
            for _ in range(need):
                idx = piece.find(b"\n", idx + 1)
            end = pos + idx + 1
            chunks.append(Chunk(len(chunks), chunk_start, end, chunk_first, chunk_lines))
            lines += need
            count -= need
            search = idx + 1
            chunk_start, chunk_first = end, chunk_first + chunk_lines
        lines += count
        pos += len(piece)
        last_byte = piece[-1:]
    total_lines = lines + (1 if pos and last_byte != b"\n" else 0)
    if pos > chunk_start:
        chunks.append(Chunk(len(chunks), chunk_start, pos, chunk_first, total_lines - chunk_first + 1))
    return chunks, total_lines, pos

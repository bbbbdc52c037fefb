"""Bounded-memory reading of an object's bytes: gzip, byte caps, and line splitting.

Memory never grows with the file or the line: bytes are read in `CHUNK_BYTES` pieces;
a line longer than `max_line` bytes is read past piece by piece (only its head, its
length and a running SHA-256 are kept) and handed on as one `LongLine`, which the
formats turn into a single `malformed_record`.

Every streamed object also has a cap on its (decompressed) size, `max_bytes`
(default `DEFAULT_MAX_DECOMPRESSED_BYTES`, 64 GiB): far above any real payment file, it
only stops a gzip bomb from keeping a worker busy for hours; the file is then failed.
A bomb below the cap costs time, not memory.

Decoding errors (not gzip, truncated gzip, corrupt deflate data) become
`UnreadableFile`. Errors of the underlying stream (the bucket went away) are not
touched: they are run problems, translated by `s3`.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final

from streamer.sources.files.errors import UnreadableFile

CHUNK_BYTES: Final = 256 * 1024
DEFAULT_MAX_DECOMPRESSED_BYTES: Final = 64 * 1024**3
HEAD_BYTES: Final = 4096
"""Bytes of a too-long line kept for the rejection's raw (1000 characters fit)."""
BOM: Final = b"\xef\xbb\xbf"

Read = Callable[[int], bytes]


def open_reader(stream: BinaryIO, *, gzipped: bool, max_bytes: int) -> Read:
    """A `read(n)` over the object's (decompressed) bytes, capped at `max_bytes`."""
    source: BinaryIO | gzip.GzipFile = (
        gzip.GzipFile(fileobj=stream, mode="rb") if gzipped else stream
    )
    total = 0

    def read(size: int) -> bytes:
        nonlocal total
        try:
            data = source.read(size)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise UnreadableFile(f"broken gzip data: {_message(exc)}") from None
        total += len(data)
        if total > max_bytes:
            raise UnreadableFile(f"more than {max_bytes} bytes after decompression")
        return data

    return read


def _message(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def read_capped(read: Read, limit: int, what: str) -> bytes:
    """All bytes if there are at most `limit`; never reads more than `limit` + 1."""
    parts: list[bytes] = []
    left = limit + 1
    while left > 0:
        data = read(min(CHUNK_BYTES, left))
        if not data:
            break
        parts.append(data)
        left -= len(data)
    if left <= 0:
        raise UnreadableFile(f"{what} is larger than {limit} bytes")
    whole = b"".join(parts)
    return whole[len(BOM) :] if whole.startswith(BOM) else whole


class LongLine:
    """A line over the length limit: its head, size and digest, never its whole text."""

    __slots__ = ("_hash", "head", "size")

    def __init__(self, first: bytes) -> None:
        self.head = first[:HEAD_BYTES]
        self.size = 0
        self._hash = hashlib.sha256()
        self.add(first)

    def add(self, data: bytes) -> None:
        self.size += len(data)
        self._hash.update(data)

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()


def iter_lines(read: Read, max_line: int) -> Iterator[bytes | LongLine]:
    """The lines of the stream without their `\\n` (a `\\r` stays), a leading BOM
    dropped; lines over `max_line` bytes come as `LongLine`s."""
    pending = b""
    long: LongLine | None = None
    first = True
    while True:
        chunk = read(CHUNK_BYTES)
        if not chunk:
            break
        if first:
            first = False
            if chunk.startswith(BOM):
                chunk = chunk[len(BOM) :]
        if long is not None:
            cut = chunk.find(b"\n")
            if cut < 0:
                long.add(chunk)
                continue
            long.add(chunk[:cut])
            yield long
            long = None
            chunk = chunk[cut + 1 :]
        lines = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield line if len(line) <= max_line else LongLine(line)
        if len(pending) > max_line:
            long = LongLine(pending)
            pending = b""
    if long is not None:
        yield long
    elif pending:
        yield pending
